"""`/healthz` (the process answers) and `/readyz` (it can serve: database, Redis, live workers).

The workers' heartbeat and the count of live workers are `executor/heartbeat.py`'s.
"""

from __future__ import annotations

import functools
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from executor.heartbeat import workers_alive
from executor.redis_clients import sync_client


@functools.cache
def _redis(url: str) -> redis.Redis:
    return sync_client(url, timeout=1, connect_timeout=1)


def readiness() -> tuple[bool, dict[str, Any]]:
    """Run the checks: the database, and with REDIS_URL, Redis and at least one live worker (and the
    live job slots, which do not decide readiness)."""
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
            # Informational: without job slots jobs wait `dispatched`, but play is served.
            checks["job_slots"] = workers_alive(client, settings.CIRCLES_JOBS_STREAM)
        except (redis.RedisError, OSError) as exc:
            checks["redis"] = f"failed: {type(exc).__name__}"
            checks["workers"] = checks["job_slots"] = "unknown"
    ready = all(value == "ok" or isinstance(value, int) for value in checks.values())
    return ready, checks


def healthz(request: HttpRequest) -> JsonResponse:
    """`GET /healthz`: 200 while the process answers at all."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """`GET /readyz`: 200 `{"status": "ok", "checks": …}`, or 503 naming the failed checks."""
    ready, checks = readiness()
    failed = [name for name, value in checks.items() if not (value == "ok" or isinstance(value, int))]
    body: dict[str, Any] = {"status": "ok" if ready else "unavailable", "checks": checks}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=200 if ready else 503)
