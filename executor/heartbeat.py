"""The workers' heartbeat, and how many workers are alive.

Each worker writes `<stream>:workers:<name>` with a TTL every few seconds from its loop
(`beat`), on a Redis connection of its own named `circles-worker:<name>` (CLIENT SETNAME).
A worker counts as alive when it has both: a heartbeat within the TTL (the loop is turning) and
that connection open (the process is alive). A killed or stopped worker's connection closes with
its process, so it stops counting at once instead of a TTL later; a hung one stops counting
when its key expires.
"""

from __future__ import annotations

import re
import time

import redis
from django.conf import settings

from executor.redis_clients import renamed

BEAT_EVERY_SECONDS = 5.0
CONNECTION_PREFIX = "circles-worker:"


def connection_name(worker: str) -> str:
    """The Redis client name of `worker`'s heartbeat connection (no spaces: CLIENT SETNAME refuses them)."""
    return CONNECTION_PREFIX + re.sub(r"\s", "_", worker)


def named_client(client: redis.Redis, name: str) -> redis.Redis:
    """A client to the same Redis (or Sentinel master) as `client`, on a pool of its own named `name`."""
    return renamed(client, name)


def heartbeat_prefix(stream: str | None = None) -> str:
    """The key prefix of the heartbeats of the workers reading `stream` (default: the play stream).

    Job slots read the jobs' stream and beat under its prefix, so they are not counted as the
    play workers /readyz and `circles_workers_alive` report.
    """
    return f"{stream or settings.CIRCLES_QUEUE_STREAM}:workers:"


def beat(client: redis.Redis, name: str, stream: str | None = None) -> None:
    """Record that worker `name` of `stream` is alive (expires after CIRCLES_WORKER_HEARTBEAT_TTL_SECONDS)."""
    client.set(
        heartbeat_prefix(stream) + name, str(time.time()), ex=settings.CIRCLES_WORKER_HEARTBEAT_TTL_SECONDS
    )


class Heartbeat:
    """Calls `beat` at most every BEAT_EVERY_SECONDS on the worker's named connection; `tick()` is cheap."""

    def __init__(self, client: redis.Redis, name: str, stream: str | None = None) -> None:
        self.client = named_client(client, connection_name(name))  # connects on the first beat
        self.name = name
        self.stream = stream
        self.last = 0.0

    def tick(self) -> None:
        """Beat if due (Redis errors propagate to the worker's reconnect logic)."""
        if time.monotonic() - self.last >= BEAT_EVERY_SECONDS:
            beat(self.client, self.name, self.stream)
            self.last = time.monotonic()


def workers_alive(client: redis.Redis, stream: str | None = None) -> int:
    """How many workers of `stream` (default: the play stream) wrote a heartbeat within its TTL and
    still hold their named connection."""
    prefix = heartbeat_prefix(stream)
    beating = {
        connection_name(key.decode(errors="replace").removeprefix(prefix))
        for key in client.scan_iter(match=prefix + "*", count=100)
    }
    connected = {entry.get("name", "") for entry in client.client_list(_type="normal")}
    return len(beating & connected)
