"""`GET /auth/nonce` (a sign-in nonce redeemable on any connection) and `GET /auth/health`.

The routes of the original server's authentication service (docs/PROTOCOL.md section 4.5).
Both answer JSON and are never cached; the nonce route is limited per client address
(`CIRCLES_AUTH_NONCES_PER_ADDRESS_PER_MINUTE`) so that it cannot be used to fill the store.
"""

import time

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from auth_secp import InvalidAddress, InvalidPublicKey, Ticket, canonical_public_key, canonical_subject
from circles.client_address import client_address, trusted_networks
from circles.lookups import find_active_circle
from circles.nonce_store import NonceStoreUnavailable, nonce_store
from circles.sign_in_limits import WINDOW_SECONDS, nonce_limiter

MAX_PARAM_CHARS = 200


def _no_store(status: int, body: dict, **headers: str) -> JsonResponse:
    """A JSON response that is never cached."""
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name] = value
    return response


def _refuse(status: int, error: str, **headers: str) -> JsonResponse:
    return _no_store(status, {"error": error}, **headers)


def request_address(request: HttpRequest) -> str | None:
    """The client address of `request` through CIRCLES_TRUSTED_PROXIES (as for WebSockets)."""
    return client_address(
        request.META.get("REMOTE_ADDR"),
        request.META.get("HTTP_X_FORWARDED_FOR"),
        trusted_networks(tuple(settings.CIRCLES_TRUSTED_PROXIES)),
    )


async def nonce(request: HttpRequest) -> JsonResponse:
    """`GET /auth/nonce?public_key=&circle=`: `{"nonce": <text to sign>, "expires_at": <unix s>}`.

    400 for a malformed key or circle, 404 for a circle that is not active, 405 for another
    method, 429 (Retry-After) over the per-address rate, 503 when the store cannot be reached.
    """
    if request.method != "GET":
        return _refuse(405, "use GET", Allow="GET")
    raw_key = request.GET.get("public_key") or None
    raw_circle = request.GET.get("circle") or None
    if len(raw_key or "") > MAX_PARAM_CHARS or len(raw_circle or "") > MAX_PARAM_CHARS:
        return _refuse(400, "parameter too long")
    try:
        subject = None if raw_key is None else canonical_subject(raw_key)
    except (InvalidPublicKey, InvalidAddress):
        return _refuse(400, "public_key is not a secp256k1 public key or Ethereum address")
    try:
        circle = None if raw_circle is None else canonical_public_key(raw_circle)
    except InvalidPublicKey:
        return _refuse(400, "circle is not a secp256k1 public key")
    if not await nonce_limiter().attempt(request_address(request)):
        return _refuse(429, "too many nonce requests", **{"Retry-After": str(WINDOW_SECONDS)})
    if circle is not None and await find_active_circle(circle) is None:
        return _refuse(404, "circle not found")
    ticket = Ticket.issue(
        settings.CIRCLES_SERVER_NAME,
        time.time(),
        settings.CIRCLES_NONCE_TTL_SECONDS,
        subject=subject,
        circle=circle,
    )
    try:
        stored = await nonce_store().put(ticket)
    except NonceStoreUnavailable:
        return _refuse(503, "nonce store unavailable", **{"Retry-After": "1"})
    if not stored:
        return _refuse(503, "too many outstanding nonces", **{"Retry-After": "1"})
    return _no_store(200, {"nonce": ticket.text, "expires_at": ticket.expires_at})


async def health(request: HttpRequest) -> JsonResponse:
    """`GET /auth/health`: `{"status": "healthy", "active_nonces": N, "timestamp": <unix s>}` (503 if not)."""
    if request.method != "GET":
        return _refuse(405, "use GET", Allow="GET")
    try:
        active = await nonce_store().active()
    except NonceStoreUnavailable:
        return _no_store(503, {"status": "unhealthy", "active_nonces": None, "timestamp": int(time.time())})
    return _no_store(200, {"status": "healthy", "active_nonces": active, "timestamp": int(time.time())})
