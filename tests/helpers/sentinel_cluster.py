"""A real Redis master, its replica and three sentinels, from the shipped deploy/redis/ files.

Each process may run on an address and behind a command prefix of its own (`ip netns exec NS`
for the several-hosts test), or all on 127.0.0.1 on free ports. Everything started is stopped by
`stop`; the files live in the given directory.
"""

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.helpers.processes import REPO, ManagedProcess, free_port, require_binary

SHIPPED_REDIS = REPO / "deploy" / "redis" / "redis.conf"
SHIPPED_SENTINEL = REPO / "deploy" / "redis" / "sentinel.conf"
MASTER_NAME = "circles"
PASSWORD = "failover-test-password"


@dataclass(frozen=True)
class Place:
    """Where a process runs: its address and port, and the command prefix that puts it there."""

    address: str
    port: int
    prefix: tuple[str, ...] = ()


def directive(text: str, name: str, value: str | None, *, count: int = 1) -> str:
    """Set directive `name` (a line `name ...`, possibly commented out) to `value`; None removes it.

    Fails when the shipped file no longer has exactly `count` such lines.
    """
    pattern = rf"^#? ?{re.escape(name)} .*$"
    new, found = re.subn(pattern, "" if value is None else f"{name} {value}", text, flags=re.M)
    assert found == count, f"deploy/redis: {count} line(s) {name!r} expected, found {found}"
    return new


def redis_config(place: Place, directory: Path, *, replica_of: Place | None = None) -> str:
    """The shipped redis.conf for one node: its address, port, directory and the test password."""
    text = SHIPPED_REDIS.read_text()
    text = directive(text, "bind", place.address)
    text = directive(text, "port", str(place.port))
    text = directive(text, "dir", str(directory))
    text = directive(text, "requirepass", PASSWORD)
    text = directive(text, "masterauth", PASSWORD)
    text = directive(text, "replicaof", f"{replica_of.address} {replica_of.port}" if replica_of else None)
    text = directive(text, "replica-priority", "100" if replica_of else None)
    # DEBUG SLEEP lets a test hold replication back (writes the replica never sees), from loopback only.
    return text + "\nenable-debug-command local\n"


def sentinel_config(place: Place, directory: Path, master: Place) -> str:
    """The shipped sentinel.conf for one sentinel watching `master`."""
    text = SHIPPED_SENTINEL.read_text()
    text = directive(text, "bind", place.address)
    text = directive(text, "port", str(place.port))
    text = directive(text, "dir", str(directory))
    text = directive(text, "sentinel monitor", f"{MASTER_NAME} {master.address} {master.port} 2")
    return directive(text, "sentinel auth-pass", f"{MASTER_NAME} {PASSWORD}")


@dataclass
class SentinelCluster:
    """Master, replica and three sentinels; `REDIS_URL`/`REDIS_SENTINELS` settings to reach them."""

    directory: Path
    master: Place
    replica: Place
    sentinels: Sequence[Place]
    db: int = 1
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    @classmethod
    def on_loopback(cls, directory: Path) -> "SentinelCluster":
        """All five on 127.0.0.1, each on a free port."""
        return cls(
            directory,
            Place("127.0.0.1", free_port()),
            Place("127.0.0.1", free_port()),
            [Place("127.0.0.1", free_port()) for _ in range(3)],
        )

    def settings(self) -> dict[str, str]:
        """The server and worker settings: the URL carries the password and database only."""
        return {
            "REDIS_URL": f"redis://:{PASSWORD}@{MASTER_NAME}/{self.db}",
            "REDIS_SENTINELS": ",".join(f"{place.address}:{place.port}" for place in self.sentinels),
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
        }

    def _start(self, name: str, place: Place, config: str, *extra: str) -> None:
        home = self.directory / name
        home.mkdir(parents=True, exist_ok=True)
        path = home / ("sentinel.conf" if extra else "redis.conf")
        path.write_text(config)
        argv = [*place.prefix, require_binary("redis-server"), str(path), *extra]
        self.processes[name] = ManagedProcess(argv, env={}, log_path=home / "log", cwd=home)

    def start(self, timeout: float = 30.0) -> None:
        """Start all five and wait until the sentinels know the replica and each other."""
        self._start("master", self.master, redis_config(self.master, self.directory / "master"))
        self._start(
            "replica",
            self.replica,
            redis_config(self.replica, self.directory / "replica", replica_of=self.master),
        )
        deadline = time.monotonic() + timeout
        while not self._replica_linked():  # sentinels then find the replica on their first INFO
            assert self.processes["replica"].alive(), self.processes["replica"].output()
            assert time.monotonic() < deadline, "the replica did not link to the master"
            time.sleep(0.05)
        for index, place in enumerate(self.sentinels):
            name = f"sentinel-{index}"
            self._start(name, place, sentinel_config(place, self.directory / name, self.master), "--sentinel")
        while not self._settled():
            dead = [name for name, process in self.processes.items() if not process.alive()]
            assert not dead, f"{dead} exited:\n" + "\n".join(self.processes[n].output() for n in dead)
            assert time.monotonic() < deadline, f"sentinels did not settle: {self._states()}"
            time.sleep(0.2)

    def node(self, place: Place) -> redis.Redis:
        """A client of one Redis node (not through the sentinels)."""
        return redis.Redis(place.address, place.port, password=PASSWORD, db=self.db, socket_timeout=2)

    def sentinel(self, place: Place) -> redis.Redis:
        """A client of one sentinel."""
        return redis.Redis(place.address, place.port, socket_timeout=1, socket_connect_timeout=1)

    def _states(self) -> list[object]:
        states: list[object] = []
        for place in self.sentinels:
            try:
                states.append(self.sentinel(place).sentinel_master(MASTER_NAME))
            except redis.RedisError as exc:
                states.append(exc)
        return states

    def _replica_linked(self) -> bool:
        try:
            return self.node(self.replica).info("replication").get("master_link_status") == "up"
        except redis.RedisError:
            return False

    def _settled(self) -> bool:
        return self._replica_linked() and all(
            isinstance(state, dict) and state["num-other-sentinels"] == 2 and state["num-slaves"] == 1
            for state in self._states()
        )

    def master_address(self, among: Sequence[Place] | None = None) -> tuple[str, int] | None:
        """The master as the first answering sentinel (of `among`, default all) names it."""
        for place in among or self.sentinels:
            try:
                host, port = self.sentinel(place).sentinel_get_master_addr_by_name(MASTER_NAME)
                return host.decode() if isinstance(host, bytes) else host, int(port)
            except (redis.RedisError, TypeError):
                continue
        return None

    def wait_for_new_master(
        self, old: Place, timeout: float = 30.0, among: Sequence[Place] | None = None
    ) -> tuple[str, int]:
        """Block until the sentinels name another master than `old`; its address."""
        deadline = time.monotonic() + timeout
        while True:
            address = self.master_address(among)
            if address is not None and address != (old.address, old.port):
                return address
            assert time.monotonic() < deadline, f"no failover within {timeout}s: {self._states()}"
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every process (sentinels first, so none starts a failover meanwhile)."""
        for name in sorted(self.processes, key=lambda name: not name.startswith("sentinel")):
            self.processes[name].stop()
        self.processes.clear()
