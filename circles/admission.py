"""Admission control: at most `CIRCLES_MAX_PENDING_SIGN_INS` connections per ASGI process between
their WebSocket handshake and their sign-in; one more is refused at once with HTTP 503.

Why: after a restart every client reconnects within seconds. Served all at once, thousands of
handshakes and sign-ins each finish late, after the client's open timeout (10 s in
`circles_client`): the client gives up, its half-done sign-in was wasted work, it comes back,
and the storm never ends (congestion collapse, docs/benchmarks/reconnect.md). Bounded, the
admitted ones finish in well under a second and the rest are told at once, cheaply, to come back
after their backoff.

A connection holds its pass from the handshake until it is signed in (at connect, by the URL,
or by `authenticate`), closes, or `CIRCLES_PENDING_SIGN_IN_SECONDS` pass (so a connection that
never signs in, a guest, holds one only briefly). The refusal happens before the channel layer or the consumer
see the connection: `503 Service Unavailable` with `Retry-After: 1` on the upgrade (the ASGI
`websocket.http.response` extension, which uvicorn has), or, on a server without it, accept
and close 1013 `try again later`. Both are what every client treats as "refused, try again".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from django.conf import settings
from prometheus_client import Counter

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

SCOPE_KEY = "circles.admission"
RETRY_AFTER_SECONDS = 1
CLOSE_TRY_AGAIN_LATER = 1013

REFUSED = Counter(
    "circles_admission_refused_total",
    "WebSocket handshakes refused (503 / 1013) because CIRCLES_MAX_PENDING_SIGN_INS were in progress.",
)


class Pass:
    """One connection's place among those signing in; `release` gives it back (once)."""

    def __init__(self, gate: Gate) -> None:
        self._gate: Gate | None = gate
        self._timer: asyncio.TimerHandle | None = None

    def expire_after(self, seconds: float) -> None:
        """Give the place back after `seconds` at the latest."""
        self._timer = asyncio.get_running_loop().call_later(seconds, self.release)

    def release(self) -> None:
        """Give the place back (a second call does nothing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._gate is not None:
            self._gate.in_progress -= 1
            self._gate = None


class Gate:
    """Counts the passes out; `limit` 0 admits everyone."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_progress = 0

    def enter(self) -> Pass | None:
        """A pass, or None when `limit` are out."""
        if self.limit > 0 and self.in_progress >= self.limit:
            return None
        self.in_progress += 1
        return Pass(self)


def release_pass(scope: Mapping[str, Any]) -> None:
    """The connection of `scope` is signed in: give its pass back, once (no pass: nothing to do).

    The pass leaves the scope with it (a dict, as every ASGI scope is), so the calls after a
    sign-in (one per response) find none.
    """
    admitted = scope.get(SCOPE_KEY)
    if admitted is not None:
        admitted.release()
        cast(dict, scope).pop(SCOPE_KEY, None)


async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a handshake 503 + Retry-After (without the extension: accept, then close 1013)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = b"server busy: try again later"
        headers = [
            (b"content-type", b"text/plain"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
        ]
        await send({"type": "websocket.http.response.start", "status": 503, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER, "reason": "try again later"})


class AdmissionControl:
    """Wraps the WebSocket app: a pass per connection (in `scope`), or a refusal when none is left."""

    def __init__(self, app: App, limit: int | None = None, window: float | None = None) -> None:
        self.app = app
        self.gate = Gate(settings.CIRCLES_MAX_PENDING_SIGN_INS if limit is None else limit)
        self.window = settings.CIRCLES_PENDING_SIGN_IN_SECONDS if window is None else window

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection: refused at once, or passed on holding a pass until it ends
        (with the limit 0, the default, passed on as it is: no pass, no timer)."""
        if scope["type"] != "websocket" or self.gate.limit <= 0:
            await self.app(scope, receive, send)
            return
        admitted = self.gate.enter()
        if admitted is None:
            REFUSED.inc()
            await refuse(scope, receive, send)
            return
        admitted.expire_after(self.window)
        inner: dict[str, Any] = {**scope, SCOPE_KEY: admitted}
        try:
            await self.app(inner, receive, send)
        finally:
            admitted.release()
