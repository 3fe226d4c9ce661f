"""Receiving one delivery: find the endpoint, verify, parse, record, queue; the answer to give.

The view hands every size-checked request to `receive`, on one of a few long-lived threads of
this module (`receive_on_db_thread`). Why: Django serves a sync view under ASGI on a new thread
per request, and database connections belong to threads, so each delivery would open (and
configure) a new database connection, which cost more than all the rest of a delivery
together (docs/benchmarks/webhooks.md). Our threads keep their connections (CONN_MAX_AGE).
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.db import close_old_connections

from executor.queue import QueueFull, QueueUnavailable
from webhooks import processing
from webhooks.models import WebhookEvent
from webhooks.payload_depth import check_depth
from webhooks.providers import InvalidSignature, MalformedEvent, Provider
from webhooks.recording import IncomingRequest, find_endpoint, new_run_id, record_accepted, record_noise

logger = logging.getLogger("webhooks")


@dataclass(frozen=True, slots=True)
class Answer:
    """The HTTP status and JSON body to answer the provider with."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


NOT_FOUND = Answer(404, {"error": "not found"})
BAD_SIGNATURE = Answer(401, {"error": "invalid signature"})  # one message whatever check failed


def receive(
    provider: Provider, circle_pk: str, body: bytes, headers: dict[str, str], remote_addr: str | None
) -> Answer:
    """Verify, record and queue one delivery of `body` for circle `circle_pk`."""
    found = find_endpoint(circle_pk, provider)
    if found is None:  # unknown or inactive circle, or the provider is not set up for it
        return NOT_FOUND
    circle_id, circle_key, config = found
    incoming = IncomingRequest(provider, circle_id, body, headers, remote_addr)
    try:
        provider.verify(body, headers, config.secret)
    except InvalidSignature as exc:
        logger.info("%s webhook for circle %s refused: %s", provider.name, circle_key[:16], exc)
        record_noise(
            incoming, WebhookEvent.Status.REJECTED, http_status=401, signature_valid=False, error=str(exc)
        )
        return BAD_SIGNATURE
    try:
        parsed = provider.parse(body)
        check_depth(parsed.payload)  # the script's EVENT constant must be convertible (400, not retries)
    except MalformedEvent as exc:
        record_noise(
            incoming, WebhookEvent.Status.REJECTED, http_status=400, signature_valid=True, error=str(exc)
        )
        return Answer(400, {"error": f"malformed event: {exc}"})
    run_id = new_run_id()
    event = record_accepted(incoming, parsed, run_id)
    if event is None:
        return Answer(200, {"status": "duplicate", "event_id": parsed.event_id})
    job = processing.webhook_job(
        event_id=event.id,
        circle_id=circle_id,
        circle_key=circle_key,
        provider=provider.name,
        payload=parsed.payload,
        script=config.script or provider.default_script,
        run_id=run_id,
    )
    try:
        processing.submit(job)
    except (QueueUnavailable, QueueFull) as exc:
        logger.warning("%s webhook %s stored but not queued: %s", provider.name, parsed.event_id, exc)
        processing.release(event.id, run_id, f"queue unavailable: {exc}", http_status=503)
        return Answer(503, {"error": "queue unavailable; the event is stored and will be processed"})
    return Answer(200, {"status": "queued", "event_id": parsed.event_id})


@cache
def _db_threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(settings.CIRCLES_WEBHOOK_DB_THREADS, thread_name_prefix="webhook-db")


def _receive_keeping_connection(*args: Any) -> Answer:
    close_old_connections()  # replaces a connection that expired or broke; keeps a healthy one
    return receive(*args)


def receive_on_db_thread(
    provider: Provider, circle_pk: str, body: bytes, headers: dict[str, str], remote_addr: str | None
) -> Answer:
    """`receive` on one of this module's threads (their database connections stay open)."""
    return (
        _db_threads()
        .submit(_receive_keeping_connection, provider, circle_pk, body, headers, remote_addr)
        .result()
    )
