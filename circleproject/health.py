"""`/healthz` (the process answers), `/readyz` (it can serve) and the workers' heartbeat.

Each worker writes `<stream>:workers:<name>` with a TTL every few seconds from its loop
(`beat`); /readyz counts those keys, so a server whose workers all stopped or lost Redis
reports "not ready" within the TTL.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

BEAT_EVERY_SECONDS = 5.0


def heartbeat_prefix() -> str:
    """The key prefix of the heartbeats of the workers reading this server's stream."""
    return f"{settings.CIRCLES_QUEUE_STREAM}:workers:"


def beat(client: redis.Redis, name: str) -> None:
    """Record that worker `name` is alive (expires after CIRCLES_WORKER_HEARTBEAT_TTL_SECONDS)."""
    client.set(heartbeat_prefix() + name, str(time.time()), ex=settings.CIRCLES_WORKER_HEARTBEAT_TTL_SECONDS)


class Heartbeat:
    """Calls `beat` at most every BEAT_EVERY_SECONDS; `tick()` is cheap to call every loop."""

    def __init__(self, client: redis.Redis, name: str) -> None:
        self.client = client
        self.name = name
        self.last = 0.0

    def tick(self) -> None:
        """Beat if due (Redis errors propagate to the worker's reconnect logic)."""
        if time.monotonic() - self.last >= BEAT_EVERY_SECONDS:
            beat(self.client, self.name)
            self.last = time.monotonic()


@functools.cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def workers_alive(client: redis.Redis) -> int:
    """How many workers wrote a heartbeat within its TTL."""
    return sum(1 for _ in client.scan_iter(match=heartbeat_prefix() + "*", count=100))


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
