"""The webhook endpoint: HTTP only. Check the provider and the body's size, pick the headers and
the client address, hand the delivery to `webhooks.intake.receive`, turn its answer into a response.

The event row must be committed before its job is queued (a worker must never race the insert),
so none of this may run inside ATOMIC_REQUESTS; `receive` runs on the intake's own threads anyway.
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from circles.client_address import client_address, trusted_networks
from webhooks.intake import receive_on_db_thread
from webhooks.metrics import count_webhook
from webhooks.providers import get_provider
from webhooks.recording import selected_headers


def _error(status: int, message: str) -> Response:
    return Response({"error": message}, status=status)


class WebhookView(APIView):
    """`POST /webhooks/{provider}/{circle_pk}`: 200 stored and queued (or duplicate), else 4xx / 503."""

    authentication_classes: list = []
    permission_classes: list = []
    renderer_classes = [JSONRenderer]
    throttle_classes: list = []

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        """Count every answer in `circles_webhook_requests_total` (provider, status)."""
        provider = kwargs.get("provider", "")
        count_webhook(provider, response.status_code, known=get_provider(provider) is not None)
        return super().finalize_response(request, response, *args, **kwargs)

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
        headers = selected_headers(handler, request.headers)
        remote_addr = client_address(
            request.META.get("REMOTE_ADDR"),
            request.META.get("HTTP_X_FORWARDED_FOR"),
            trusted_networks(tuple(settings.CIRCLES_TRUSTED_PROXIES)),
        )
        answer = receive_on_db_thread(handler, circle_pk, body, headers, remote_addr)
        return Response(answer.body, status=answer.status)
