"""`/healthz` (the process answers), `/readyz` (it can serve) and the workers' heartbeat.

Each worker writes `<stream>:workers:<name>` with a TTL every few seconds from its loop
(`beat`), on a Redis connection of its own named `circles-worker:<name>` (CLIENT SETNAME).
/readyz counts the workers that have both: a heartbeat within the TTL (the loop is turning) and
that connection open (the process is alive). A killed or stopped worker's connection closes with
its process, so it stops counting at once instead of a TTL later; a hung one stops counting
when its key expires.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from circleproject.redis_clients import renamed, sync_client

BEAT_EVERY_SECONDS = 5.0
CONNECTION_PREFIX = "circles-worker:"


def connection_name(worker: str) -> str:
    """The Redis client name of `worker`'s heartbeat connection (no spaces: CLIENT SETNAME refuses them)."""
    return CONNECTION_PREFIX + re.sub(r"\s", "_", worker)


def named_client(client: redis.Redis, name: str) -> redis.Redis:
    """A client to the same Redis (or Sentinel master) as `client`, on a pool of its own named `name`."""
    return renamed(client, name)


def heartbeat_prefix() -> str:
    """The key prefix of the heartbeats of the workers reading this server's stream."""
    return f"{settings.CIRCLES_QUEUE_STREAM}:workers:"


def beat(client: redis.Redis, name: str) -> None:
    """Record that worker `name` is alive (expires after CIRCLES_WORKER_HEARTBEAT_TTL_SECONDS)."""
    client.set(heartbeat_prefix() + name, str(time.time()), ex=settings.CIRCLES_WORKER_HEARTBEAT_TTL_SECONDS)


class Heartbeat:
    """Calls `beat` at most every BEAT_EVERY_SECONDS on the worker's named connection; `tick()` is cheap."""

    def __init__(self, client: redis.Redis, name: str) -> None:
        self.client = named_client(client, connection_name(name))  # connects on the first beat
        self.name = name
        self.last = 0.0

    def tick(self) -> None:
        """Beat if due (Redis errors propagate to the worker's reconnect logic)."""
        if time.monotonic() - self.last >= BEAT_EVERY_SECONDS:
            beat(self.client, self.name)
            self.last = time.monotonic()


@functools.cache
def _redis(url: str) -> redis.Redis:
    return sync_client(url, timeout=1, connect_timeout=1)


def workers_alive(client: redis.Redis) -> int:
    """How many workers wrote a heartbeat within its TTL and still hold their named connection."""
    prefix = heartbeat_prefix()
    beating = {
        connection_name(key.decode(errors="replace").removeprefix(prefix))
        for key in client.scan_iter(match=prefix + "*", count=100)
    }
    connected = {entry.get("name", "") for entry in client.client_list(_type="normal")}
    return len(beating & connected)


def readiness() -> tuple[bool, dict[str, Any]]:
    """Run the checks: the database, and with REDIS_URL, Redis and at least one live worker."""
    checks: dict[str, Any] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means "not ready"
        checks["database"] = f"failed: {type(exc).__name__}"
    if settings.REDIS_URL:
        client = _redis(settings.REDIS_URL)
        try:
            client.ping()
            checks["redis"] = "ok"
            alive = workers_alive(client)
            checks["workers"] = alive if alive else "failed: no worker heartbeat"
        except (redis.RedisError, OSError) as exc:
            checks["redis"] = f"failed: {type(exc).__name__}"
            checks["workers"] = "unknown"
    ready = all(value == "ok" or isinstance(value, int) for value in checks.values())
    return ready, checks


def healthz(request: HttpRequest) -> JsonResponse:
    """`GET /healthz`: 200 while the process answers at all."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """`GET /readyz`: 200 `{"status": "ok", "checks": …}`, or 503 naming the failed checks."""
    ready, checks = readiness()
    failed = [name for name, value in checks.items() if not (value == "ok" or isinstance(value, int))]
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=200 if ready else 503)
