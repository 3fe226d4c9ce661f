"""End-to-end fixtures: a migrated database with known circles (PostgreSQL; SQLite for embedded mode)."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.helpers.keys import WalletKey
from tests.helpers.postgres_server import PostgresServer
from tests.helpers.processes import PYTHON, ManagedProcess, manage, server_env, start_asgi_server


@dataclass(frozen=True)
class World:
    """The circles and keys the end-to-end database holds."""

    database_url: str
    owner: WalletKey
    admin: WalletKey
    member: WalletKey
    guest: WalletKey
    circle: str  # active, members only
    open_circle: str  # active, guests may play
    open_owner: WalletKey
    inactive_circle: str
    inactive_owner: WalletKey


def build_world(database_url: str) -> World:
    """Migrate the empty database at `database_url` and fill it through the management commands."""
    keys = {
        name: WalletKey.named(f"e2e-{name}") for name in ("owner", "admin", "member", "guest", "open", "off")
    }
    world = World(
        database_url=database_url,
        owner=keys["owner"],
        admin=keys["admin"],
        member=keys["member"],
        guest=keys["guest"],
        circle=keys["owner"].pubkey,
        open_circle=keys["open"].pubkey,
        open_owner=keys["open"],
        inactive_circle=keys["off"].pubkey,
        inactive_owner=keys["off"],
    )
    env = server_env(world.database_url)
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "create_circle", "--name", "e2e", "--pubkey", world.owner.pubkey_uncompressed)
    manage(env, "create_circle", "--name", "open", "--pubkey", world.open_circle, "--allow-guests")
    manage(env, "create_circle", "--name", "off", "--pubkey", world.inactive_circle, "--inactive")
    manage(env, "add_member", world.circle, world.admin.pubkey, "--role", "admin")
    manage(env, "add_member", world.circle, "0x" + world.member.pubkey.upper(), "--role", "member")
    return world


@pytest.fixture(scope="session")
def world(postgres_server: PostgresServer) -> World:
    """A fresh database on the private PostgreSQL (the production database), migrated and filled."""
    return build_world(postgres_server.create_database("e2e"))


@pytest.fixture(scope="session")
def sqlite_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The same world in a SQLite file, for the tests of embedded mode (`make run`'s database).

    Pass it to `start_server(world=sqlite_world)` and `start_workers(world=sqlite_world)`.
    """
    return build_world(f"sqlite:///{tmp_path_factory.mktemp('e2e-db') / 'circles.sqlite3'}")


ServerFactory = Callable[..., str]


@pytest.fixture(scope="module")
def start_server(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Start real ASGI servers on free ports (`kind` uvicorn or daphne, `settings` as env); stopped after.

    They use `world`'s database unless given another (`world=sqlite_world`).
    """
    started: list[ManagedProcess] = []
    logs = tmp_path_factory.mktemp("server-logs")

    def start(kind: str = "uvicorn", *, world: World = world, **settings: str) -> str:
        env = server_env(world.database_url, **{key: str(value) for key, value in settings.items()})
        process, port = start_asgi_server(kind, env, logs / f"{kind}-{len(started)}.log")
        started.append(process)
        return f"ws://127.0.0.1:{port}"

    start.started = started  # the processes, for tests that read a server's log
    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def server(start_server: ServerFactory) -> str:
    """A uvicorn server with default settings (no Redis: embedded mode)."""
    return start_server()


@pytest.fixture(scope="module")
def start_workers(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ManagedProcess]]:
    """Start real `manage.py rhai_worker` processes; stopped (SIGTERM) after the module."""
    started: list[ManagedProcess] = []
    logs = tmp_path_factory.mktemp("worker-logs")

    def start(
        *, concurrency: int = 1, job_slots: int = 0, world: World = world, **settings: str
    ) -> ManagedProcess:
        # Play workers only unless a test asks for job slots: the tests that count a supervisor's
        # children or its live workers are about play workers.
        env = server_env(world.database_url, LOG_LEVEL="DEBUG", **{k: str(v) for k, v in settings.items()})
        argv = [PYTHON, "manage.py", "rhai_worker", "--concurrency", str(concurrency)]
        argv += ["--job-slots", str(job_slots)]
        process = ManagedProcess(argv, env=env, log_path=logs / f"worker-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
