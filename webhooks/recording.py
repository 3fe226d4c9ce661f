"""Recording deliveries: the accepted event row (unique per provider, circle and event id),
and the small, rate-bounded rows kept for rejected requests and duplicate deliveries.

Duplicates are found by the database, not by a look-up first: the insert of a second
delivery of the same event violates `unique_webhook_event` and raises IntegrityError, so two
deliveries racing each other still produce exactly one accepted row (and one run).

Rejected and duplicate rows ("noise") sit outside that constraint. Anyone can post unsigned
bodies, so they are bounded: at most `CIRCLES_WEBHOOK_NOISE_PER_MINUTE` per circle and provider
in any minute (beyond that only a log line), each with at most `CIRCLES_WEBHOOK_NOISE_BODY_BYTES`
of body; `manage.py prune_webhook_events` deletes old rows.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import FilteredRelation, Q
from django.utils import timezone

from circles.models import Circle
from webhooks.models import WebhookEndpoint, WebhookEvent
from webhooks.providers import ParsedEvent, Provider

logger = logging.getLogger("webhooks")

COMMON_HEADERS = ("content-type", "content-length", "user-agent", "x-forwarded-for", "x-request-id")


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """What a circle has configured for a provider: the secret to verify with and its handler script."""

    secret: str
    script: str


def endpoint_config(circle_id: int, provider: Provider) -> EndpointConfig | None:
    """The circle's configuration for `provider`, or None when the provider is not set up for it.

    A WebhookEndpoint row wins (disabled: None; blank secret: the environment's); without a
    row the environment's secret alone configures the provider with the default script.
    """
    row = (
        WebhookEndpoint.objects.filter(circle_id=circle_id, provider=provider.name)
        .order_by()
        .values_list("secret", "enabled", "script")
        .first()
    )
    return config_from(provider, row)


def config_from(provider: Provider, row: tuple[str, bool, str] | None) -> EndpointConfig | None:
    """The configuration a WebhookEndpoint row's (secret, enabled, script) gives, or None without a row."""
    if row is None:
        secret, script = provider.fallback_secret, ""
    else:
        secret, enabled, script = row
        if not enabled:
            return None
        secret = secret or provider.fallback_secret
    return EndpointConfig(secret, script) if secret else None


def find_endpoint(circle_pk: str, provider: Provider) -> tuple[int, str, EndpointConfig] | None:
    """One query: the active circle `circle_pk` (any accepted key form) and its configuration for
    `provider`, as (circle id, canonical key, config); None for an unknown or inactive circle or a
    provider not configured for it."""
    endpoint = FilteredRelation("webhook_endpoints", condition=Q(webhook_endpoints__provider=provider.name))
    row = (
        Circle.objects.filter(public_key=circle_pk, is_active=True)
        .annotate(endpoint=endpoint)
        .order_by()
        .values_list(
            "id", "public_key", "endpoint__id", "endpoint__secret", "endpoint__enabled", "endpoint__script"
        )
        .first()
    )
    if row is None:
        return None
    circle_id, circle_key, endpoint_id, *settings_row = row
    config = config_from(provider, None if endpoint_id is None else tuple(settings_row))
    return None if config is None else (circle_id, circle_key, config)


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """One POST as the view received it."""

    provider: Provider
    circle_id: int
    body: bytes
    headers: dict[str, str]
    remote_addr: str | None


def selected_headers(provider: Provider, headers: Any) -> dict[str, str]:
    """The request headers worth keeping (lower-case names): the provider's and a few common ones."""
    kept = {}
    for name in (*provider.recorded_headers, *COMMON_HEADERS):
        value = headers.get(name)
        if value is not None:
            kept[name] = value[:1000]
    return kept


def body_text(body: bytes, limit: int | None = None) -> str:
    """The body as text for the row (invalid UTF-8 replaced, NUL removed for PostgreSQL), capped."""
    return (body[:limit] if limit is not None else body).decode("utf-8", "replace").replace("\x00", "\ufffd")


def record_accepted(incoming: IncomingRequest, parsed: ParsedEvent, run_id: str) -> WebhookEvent | None:
    """Insert the verified event as `queued` for job `run_id`; None when it is a duplicate.

    The row is leased to that job until `CIRCLES_WEBHOOK_LEASE_SECONDS` from now: if the job is
    never queued or lost, the sweep queues the event again after that.
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            return WebhookEvent.objects.create(
                provider=incoming.provider.name,
                circle_id=incoming.circle_id,
                event_id=parsed.event_id,
                event_type=parsed.event_type,
                remote_addr=incoming.remote_addr,
                headers=incoming.headers,
                body=body_text(incoming.body),
                body_size=len(incoming.body),
                payload=parsed.payload,
                signature_valid=True,
                status=WebhookEvent.Status.QUEUED,
                http_status=200,
                run_id=run_id,
                next_attempt_at=now + timedelta(seconds=settings.CIRCLES_WEBHOOK_LEASE_SECONDS),
            )
    except IntegrityError:
        record_noise(
            incoming,
            WebhookEvent.Status.DUPLICATE,
            http_status=200,
            signature_valid=True,
            event_id=parsed.event_id,
            event_type=parsed.event_type,
        )
        return None


def record_noise(
    incoming: IncomingRequest,
    status: str,
    *,
    http_status: int,
    signature_valid: bool,
    error: str = "",
    event_id: str | None = None,
    event_type: str = "",
) -> bool:
    """Keep a small row for a rejected request or a duplicate delivery, unless over the bound."""
    since = timezone.now() - timedelta(seconds=60)
    recent = WebhookEvent.objects.filter(
        circle_id=incoming.circle_id,
        provider=incoming.provider.name,
        status__in=WebhookEvent.NOISE,
        received_at__gte=since,
    ).count()
    if recent >= settings.CIRCLES_WEBHOOK_NOISE_PER_MINUTE:
        logger.warning(
            "%s webhook for circle %s: %s (%s) not recorded: over %s a minute",
            incoming.provider.name,
            incoming.circle_id,
            status,
            error or event_id,
            settings.CIRCLES_WEBHOOK_NOISE_PER_MINUTE,
        )
        return False
    WebhookEvent.objects.create(
        provider=incoming.provider.name,
        circle_id=incoming.circle_id,
        event_id=event_id,
        event_type=event_type,
        remote_addr=incoming.remote_addr,
        headers=incoming.headers,
        body=body_text(incoming.body, settings.CIRCLES_WEBHOOK_NOISE_BODY_BYTES),
        body_size=len(incoming.body),
        signature_valid=signature_valid,
        status=status,
        http_status=http_status,
        error=error,
    )
    return True


def new_run_id() -> str:
    """A fresh job run id."""
    return str(uuid.uuid4())
