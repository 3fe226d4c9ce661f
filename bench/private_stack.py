"""A benchmark's private PostgreSQL and Redis with one circle on them, removed at the end.

`bench.jobs` and `bench.job_costs` each start their own servers (127.0.0.1, free ports, in a
temporary directory): a PostgreSQL (the production database) with a migrated database, a Redis
without persistence, and one circle of an owner and its members. Processes the benchmark starts
on top of them are its own to stop, before this context ends.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from circles_client.keys import SigningKey
from tests.helpers.postgres_server import PostgresServer
from tests.helpers.processes import manage, server_env
from tests.helpers.redis_server import RedisServer


@dataclass(frozen=True)
class PrivateStack:
    """What a benchmark's servers and workers run on."""

    workdir: Path  # for logs, removed at the end
    env: dict[str, str]  # of a server or worker process on this database and Redis
    database_url: str
    postgres: PostgresServer
    redis: RedisServer


@contextlib.contextmanager
def circle_on_private_stack(
    name: str, owner: SigningKey, members: list[SigningKey], **env: str
) -> Iterator[PrivateStack]:
    """Start PostgreSQL and Redis, migrate, make a circle of `owner` with `members`; stop them at exit.

    `env`: more settings of the processes (`server_env`'s extras), migrations included.
    """
    with tempfile.TemporaryDirectory(prefix=f"{name}-bench-") as tmp:
        workdir = Path(tmp)
        postgres, redis_server = PostgresServer(), RedisServer(workdir, persist=False)
        try:
            postgres.start()
            redis_server.start()
            database_url = postgres.create_database(name.replace("-", "_"))
            base = server_env(database_url, REDIS_URL=redis_server.url, LOG_LEVEL="WARNING", **env)
            manage(base, "migrate", "--noinput", "-v0")
            manage(base, "create_circle", "--name", "bench", "--pubkey", owner.pubkey)
            for member in members:
                manage(base, "add_member", owner.pubkey, member.pubkey)
            yield PrivateStack(workdir, base, database_url, postgres, redis_server)
        finally:
            redis_server.stop()
            postgres.stop()
