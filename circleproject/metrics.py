"""`/metrics`: the Prometheus exposition of the server and its workers, and who may read it.

The WebSocket face's and the webhooks' metrics are defined beside what they measure
(`circles.metrics`, `webhooks.metrics`); instrumented code makes one cheap call there (a
pre-bound child's `inc`/`observe`, looked up in a dict: no label formatting per call). With
`PROMETHEUS_MULTIPROC_DIR` set (before the process starts) every uvicorn and worker process
writes its samples to files there and `/metrics` on any process reports the sum; without it
each process reports its own. The executor's metrics are its own (`executor.metrics`); its queue
gauges are read from Redis at scrape time, registered here only when REDIS_URL is set.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from circles.client_address import client_address, in_networks, parse_address, trusted_networks
from executor.metrics import QueueCollector


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

    def collect(self) -> Iterable[Metric]:
        """Everything the wrapped registry collects."""
        return self.registry.collect()


def metrics_allowed(request: HttpRequest) -> bool:
    """Whether `request` may read /metrics: a valid Bearer token, or an address in the allowed networks."""
    token = settings.CIRCLES_METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
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
