"""The webhooks' Prometheus metrics: requests answered and event runs, by provider.

Defined here, beside what they measure; the callers pass the labels in (this module does not
look providers up). `circleproject.metrics` serves them.
"""

from prometheus_client import Counter

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


def count_webhook(provider: str, status: int, *, known: bool) -> None:
    """A webhook request was answered; a provider name outside the configured ones (`known` False)
    counts as "unknown", so a client cannot grow the label set."""
    WEBHOOK_REQUESTS.labels(provider if known else "unknown", str(status)).inc()


def count_webhook_event(provider: str, status: str) -> None:
    """A webhook event's run ended: `processed`, `retry` (will run again) or `failed` (gave up)."""
    WEBHOOK_EVENTS.labels(provider, status).inc()
