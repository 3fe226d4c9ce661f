"""A private redis-server for the tests: on a free port, in a temp dir, stopped after."""

import time
from pathlib import Path

import redis

from tests.helpers.processes import ManagedProcess, free_port, require_binary, wait_for_port


class RedisServer:
    """A real redis-server process that can be stopped and started again on the same port."""

    def __init__(self, directory: Path, *, persist: bool = True) -> None:
        self.binary = require_binary("redis-server")
        self.directory = directory
        self.persist = persist
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) the server; AOF on so a restart keeps the queue, as in production.

        `persist=False` (benchmarks) runs without AOF: nothing survives a restart.
        """
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        argv = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            *aof, "--save", "", "--protected-mode", "yes",
        ]  # fmt: skip
        self.process = ManagedProcess(argv, env={}, log_path=self.directory / "redis.log", cwd=self.directory)
        wait_for_port(self.port, self.process.process)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:  # the port opens before the AOF is loaded
            try:
                client.ping()
                break
            except redis.BusyLoadingError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)
