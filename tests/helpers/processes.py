"""Start and stop real server processes on free loopback ports (tests stop what they start)."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Block until something accepts on `port`, failing fast if `process` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


class ManagedProcess:
    """A subprocess whose output goes to a log file and which is stopped (then killed) on `stop`."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str], log_path: Path, cwd: Path = REPO) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            self.argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            self.process.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL the whole process group; returns the exit code."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()
        return self.process.returncode

    def output(self) -> str:
        """Everything the process printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a server or worker process under test."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CIRCLES_", "DJANGO_")) and key not in ("REDIS_URL", "DATABASE_URL", "DEBUG")
    }
    env.update(
        {
            "SECRET_KEY": "test-secret-key-not-for-production",
            "DEBUG": "0",
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "circleproject.settings",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def manage(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run `manage.py ARGS` in a subprocess with `env` (killed after `timeout` seconds)."""
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def start_asgi_server(
    kind: str, env: dict[str, str], log_path: Path, port: int | None = None
) -> tuple[ManagedProcess, int]:
    """Start uvicorn, daphne, `circleproject.serve` ("serve") or `manage.py runserver` ("runserver", the
    development server of `make run`) on 127.0.0.1 and wait until it listens."""
    port = port or free_port()
    if kind == "uvicorn":
        argv = [
            PYTHON,
            "-m",
            "uvicorn",
            "circleproject.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--lifespan",
            "off",
        ]
    elif kind == "serve":  # the production entry point, circleproject/serve.py
        argv = [PYTHON, "-m", "circleproject.serve", "--host", "127.0.0.1", "--port", str(port)]
    elif kind == "daphne":
        argv = [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "circleproject.asgi:application"]
    elif kind == "runserver":
        argv = [PYTHON, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    else:
        raise ValueError(kind)
    process = ManagedProcess(argv, env=env, log_path=log_path)
    try:
        wait_for_port(port, process.process)
    except Exception:
        process.stop()
        raise RuntimeError(f"{kind} did not start:\n{process.output()}") from None
    return process, port


def require_binary(name: str) -> str:
    """The path of a system binary the suite needs; a missing one fails loudly (never a skip)."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed: run `make test`, which installs it from Debian")
    return path
