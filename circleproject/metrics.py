"""Every Prometheus metric of the server and its workers, defined in one place, and `/metrics`.

Instrumented code makes one cheap call here (a pre-bound child's `inc`/`observe`, looked up
in a dict: no label formatting per call). With `PROMETHEUS_MULTIPROC_DIR` set (before the
process starts) every uvicorn and worker process writes its samples to files there and
`/metrics` on any process reports the sum; without it each process reports its own.
The queue gauges are read from Redis at scrape time (only when REDIS_URL is set).
"""

from __future__ import annotations

import functools
import hmac
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONNECTIONS = Gauge(
    "circles_connections_open", "Open circle WebSocket connections.", multiprocess_mode="livesum"
)
SIGN_INS = Counter("circles_sign_ins_total", "authenticate calls by outcome.", ["outcome"])
RPC_CALLS = Counter(
    "circles_rpc_calls_total", "JSON-RPC calls answered, by method and code (0: success).", ["method", "code"]
)
PLAY_SECONDS = Histogram(
    "circles_play_seconds",
    "Time from a play reaching the executor to its answer (queue, run, delivery).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
JOB_SECONDS = Histogram(
    "circles_job_seconds",
    "Time a worker spent on one job, by outcome (ok, error, dead).",
    ["outcome"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
WEBHOOK_REQUESTS = Counter(
    "circles_webhook_requests_total",
    "Webhook deliveries received, by provider and HTTP status.",
    ["provider", "status"],
)

WEBHOOK_EVENTS = Counter(
    "circles_webhook_events_total",
    "Webhook event runs by provider and what followed (processed, retry, failed).",
    ["provider", "status"],
)

SIGN_IN_OK = SIGN_INS.labels("ok")
SIGN_IN_FAILED = SIGN_INS.labels("invalid")
JOB_OK, JOB_ERROR, JOB_DEAD = (JOB_SECONDS.labels(outcome) for outcome in ("ok", "error", "dead"))

_rpc_children: dict[tuple[str, int], Any] = {}


def count_rpc(method: str, code: int) -> None:
    """Count one answered call; method names the registry does not know count as "unknown"."""
    child = _rpc_children.get((method, code))
    if child is None:
        from circles.methods import registry

        known = registry.get(method) is not None
        child = RPC_CALLS.labels(method if known else "unknown", str(code))
        if known:  # bounded: registered methods x codes; unknown names are not cached
            _rpc_children[(method, code)] = child
    child.inc()


def count_webhook_event(provider: str, status: str) -> None:
    """A webhook event's run ended: `processed`, `retry` (will run again) or `failed` (gave up)."""
    WEBHOOK_EVENTS.labels(provider, status).inc()


def observe_job(ok: bool, seconds: float) -> None:
    """A worker finished a job (ok or failed run)."""
    (JOB_OK if ok else JOB_ERROR).observe(seconds)


def count_webhook(provider: str, status: int) -> None:
    """A webhook request was answered (provider names outside the configured ones count as "unknown")."""
    from webhooks.providers import get_provider

    WEBHOOK_REQUESTS.labels(provider if get_provider(provider) else "unknown", str(status)).inc()


T = TypeVar("T")


def timed_play(call: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Decorate a play runner's `run`: observe its duration in `circles_play_seconds`."""

    @functools.wraps(call)
    async def timed(*args: Any, **kwargs: Any) -> T:
        started = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        finally:
            PLAY_SECONDS.observe(time.perf_counter() - started)

    return timed


class QueueCollector(Collector):
    """Queue length, pending, dead letters, oldest job's age and live workers, read from Redis at scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the queue gauges and `circles_redis_up` (0, and nothing else, when Redis is unreachable)."""
        import redis

        from executor.heartbeat import workers_alive
        from executor.queue import QueueConfig

        try:
            queue = _job_queue(QueueConfig.from_settings())
            values = (
                queue.length(),
                queue.pending(),
                queue.dead_length(),
                queue.oldest_age_seconds(),
                workers_alive(queue.redis),
            )
        except (redis.RedisError, OSError):
            yield GaugeMetricFamily("circles_redis_up", "Whether Redis answered this scrape.", value=0)
            return
        yield GaugeMetricFamily("circles_redis_up", "Whether Redis answered this scrape.", value=1)
        for name, text, value in zip(
            (
                "circles_queue_length",
                "circles_queue_pending",
                "circles_queue_dead_letters",
                "circles_queue_oldest_age_seconds",
                "circles_workers_alive",
            ),
            (
                "Jobs in the stream (queued or running).",
                "Jobs delivered and not acknowledged.",
                "Jobs in the dead-letter stream.",
                "Age of the oldest job in the stream (0 when empty).",
                "Workers with a heartbeat within its TTL and their named Redis connection open.",
            ),
            values,
            strict=True,
        ):
            yield GaugeMetricFamily(name, text, value=value)


@functools.cache
def _job_queue(config: Any) -> Any:
    from executor.queue import JobQueue
    from executor.redis_clients import sync_client

    return JobQueue(config, sync_client(config.url, timeout=1, connect_timeout=1))


def scrape() -> bytes:
    """The text exposition of this process's (or, in multiprocess mode, every process's) metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_Forward(REGISTRY))
    if settings.REDIS_URL:
        registry.register(QueueCollector())
    return generate_latest(registry)


class _Forward(Collector):
    """Exposes another registry's metrics (the default one) inside a per-scrape registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        """Everything the wrapped registry collects."""
        return self.registry.collect()


def metrics_allowed(request: HttpRequest) -> bool:
    """Whether `request` may read /metrics: a valid Bearer token, or an address in the allowed networks."""
    token = settings.CIRCLES_METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    from circles.client_address import client_address, in_networks, parse_address, trusted_networks

    address = client_address(
        request.META.get("REMOTE_ADDR"),
        request.META.get("HTTP_X_FORWARDED_FOR"),
        trusted_networks(tuple(settings.CIRCLES_TRUSTED_PROXIES)),
    )
    parsed = parse_address(address or "")
    if parsed is None:
        return False
    return in_networks(parsed, trusted_networks(tuple(settings.CIRCLES_METRICS_ALLOWED_IPS)))


def metrics_view(request: HttpRequest) -> HttpResponse:
    """`GET /metrics`: the Prometheus text format, or 403 for a client not allowed."""
    if not metrics_allowed(request):
        return HttpResponse(b'{"error": "forbidden"}', status=403, content_type="application/json")
    return HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)
