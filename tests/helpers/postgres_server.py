"""A private PostgreSQL for the tests: Debian's server binaries, a temp cluster on a free port, removed after.

initdb refuses to run as root, so the cluster belongs to the `postgres` system user (Debian's
`postgresql` package creates it) and its programs run through `runuser -u postgres --`. Nothing
waits for disk: fsync, synchronous commit and full-page writes are off (a crash loses the cluster,
which the tests throw away anyway).
"""

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from tests.helpers.processes import ManagedProcess, free_port, require_binary, wait_for_port

USER = "postgres"


def postgres_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin; a missing PostgreSQL fails loudly (never a skip)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parts[-3]))
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run `make test`,"
            " which installs Debian's postgresql package"
        )
    return Path(found[-1]).parent


class PostgresServer:
    """A real `postgres` process on 127.0.0.1 with a throwaway cluster; `create_database` per use."""

    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        self.runuser = require_binary("runuser")
        try:
            self.owner = pwd.getpwnam(USER)
        except KeyError:
            raise RuntimeError(f"no {USER!r} system user: reinstall Debian's postgresql") from None
        self.port = free_port()
        self.process: ManagedProcess | None = None
        # pytest's temp dirs are root-only (0700), so the cluster lives in a directory of its own.
        self.directory = Path(tempfile.mkdtemp(prefix="circles-pg-"))
        self.data = self.directory / "data"

    def _as_postgres(self, *argv: str) -> list[str]:
        return [self.runuser, "-u", USER, "--", *argv]

    def url(self, database: str = "postgres") -> str:
        return f"postgres://{USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        os.chown(self.directory, self.owner.pw_uid, self.owner.pw_gid)
        subprocess.run(
            self._as_postgres(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "-A", "trust",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            ),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        argv = self._as_postgres(
            str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=400", "-c", "shared_buffers=64MB", "-c", "log_min_messages=warning",
        )  # fmt: skip
        self.process = ManagedProcess(argv, env={"LC_ALL": "C"}, log_path=self.directory / "postgres.log")
        try:
            wait_for_port(self.port, self.process.process)
            deadline = time.monotonic() + 30
            while True:  # the port opens before the cluster accepts connections
                try:
                    psycopg.connect(self.url(), connect_timeout=2).close()
                    break
                except psycopg.OperationalError:
                    if time.monotonic() > deadline or not self.process.alive():
                        raise
                    time.sleep(0.05)
        except Exception:
            output = self.process.output()
            self.stop()
            raise RuntimeError(f"postgres did not start:\n{output}") from None

    def create_database(self, prefix: str = "circles") -> str:
        """A new empty database with a unique name; its postgres:// URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected), then remove the cluster."""
        if self.process is not None:
            if self.process.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.process.wait(15)
            self.process.stop()
            self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)
