"""The webhook endpoint: HTTP only. Find the circle and provider, check size and signature, hand
the request to `webhooks.recording` and `webhooks.processing`, turn the outcome into a status.

The view is synchronous on purpose: a verified delivery costs two small queries, one insert
and one Redis round trip, and Django runs sync views on a thread off the event loop
(docs/BENCHMARKS-webhooks.md has the figures). Nothing here runs in ATOMIC_REQUESTS: the
event row must be committed before its job is queued, so a worker never races the insert.
"""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from circles.models import Circle
from executor.queue import QueueFull, QueueUnavailable
from webhooks import processing
from webhooks.client_address import client_address, trusted_networks
from webhooks.models import WebhookEvent
from webhooks.providers import InvalidSignature, MalformedEvent, get_provider
from webhooks.recording import (
    IncomingRequest,
    endpoint_config,
    new_run_id,
    record_accepted,
    record_noise,
    selected_headers,
)

logger = logging.getLogger("webhooks")


def _error(status: int, message: str) -> Response:
    return Response({"error": message}, status=status)


class WebhookView(APIView):
    """`POST /webhooks/{provider}/{circle_pk}`: 200 stored and queued (or duplicate), else 4xx / 503."""

    authentication_classes: list = []
    permission_classes: list = []
    renderer_classes = [JSONRenderer]
    throttle_classes: list = []

    def post(self, request: Request, provider: str, circle_pk: str) -> Response:
        """Verify, record and queue one delivery."""
        handler = get_provider(provider)
        if handler is None:
            return _error(404, "not found")
        limit = settings.CIRCLES_WEBHOOK_MAX_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _error(400, "bad Content-Length")
        if declared > limit:
            return _error(413, f"body over {limit} bytes")
        try:
            body = request.body
        except RequestDataTooBig:
            return _error(413, f"body over {limit} bytes")
        if len(body) > limit:
            return _error(413, f"body over {limit} bytes")
        circle = (
            Circle.objects.filter(public_key=circle_pk, is_active=True)
            .values_list("id", "public_key")
            .first()
        )
        if circle is None:
            return _error(404, "not found")
        circle_id, circle_key = circle
        config = endpoint_config(circle_id, handler)
        if config is None:
            return _error(404, "not found")
        processing.ensure_local_sweeper()
        incoming = IncomingRequest(
            provider=handler,
            circle_id=circle_id,
            body=body,
            headers=selected_headers(handler, request.headers),
            remote_addr=client_address(
                request.META.get("REMOTE_ADDR"),
                request.META.get("HTTP_X_FORWARDED_FOR"),
                trusted_networks(tuple(settings.CIRCLES_TRUSTED_PROXIES)),
            ),
        )
        try:
            handler.verify(body, incoming.headers, config.secret)
        except InvalidSignature as exc:
            logger.info("%s webhook for circle %s refused: %s", provider, circle_key[:16], exc)
            record_noise(
                incoming, WebhookEvent.Status.REJECTED, http_status=401, signature_valid=False, error=str(exc)
            )
            return _error(401, "invalid signature")
        try:
            parsed = handler.parse(body)
        except MalformedEvent as exc:
            record_noise(
                incoming, WebhookEvent.Status.REJECTED, http_status=400, signature_valid=True, error=str(exc)
            )
            return _error(400, f"malformed event: {exc}")
        run_id = new_run_id()
        event = record_accepted(incoming, parsed, run_id)
        if event is None:
            return Response({"status": "duplicate", "event_id": parsed.event_id})
        job = processing.webhook_job(
            event_id=event.id,
            circle_id=circle_id,
            circle_key=circle_key,
            provider=handler.name,
            payload=parsed.payload,
            script=config.script or handler.default_script,
            run_id=run_id,
        )
        try:
            processing.submit(job)
        except (QueueUnavailable, QueueFull) as exc:
            logger.warning("%s webhook %s stored but not queued: %s", provider, parsed.event_id, exc)
            processing.release(event.id, run_id, f"queue unavailable: {exc}", http_status=503)
            return _error(503, "queue unavailable; the event is stored and will be processed")
        return Response({"status": "queued", "event_id": parsed.event_id})
