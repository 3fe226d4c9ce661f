"""An ASGI wrapper in front of Django's HTTP app: bodies are capped and timed before Django reads them.

Django's ASGIHandler reads the whole body (spooling it to disk past FILE_UPLOAD_MAX_MEMORY_SIZE)
before any view runs, so a view's own size check comes after the bytes were taken, and a body
that stops arriving keeps the request open for as long as the client likes. Here, per request:

- a `Content-Length` above the path's cap is answered 413 at once, without reading the body;
- a body without one (chunked) is counted while it arrives: 413 as soon as it passes the cap;
- each wait for the next piece of body is limited to `timeout` seconds: 408 when it runs out.

A refusal answers with `Connection: close` (the server then drops the connection instead of
draining the rest) and tells Django the client went away, so Django answers nothing itself.
Once the body is complete every `receive` goes straight through (Django then waits on it for
the disconnect, which must not time out). WebSockets and other scope types pass untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

# The shapes Django's ASGIHandler takes (messages are only read here, never changed).
Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
DISCONNECT: Message = {"type": "http.disconnect"}


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The request's `Content-Length` as a number; None when absent or not a number (Django decides then)."""
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def refuse(send: Send, status: int, message: str) -> None:
    """Answer `status` with `{"error": message}` and `Connection: close`."""
    body = orjson.dumps({"error": message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimits:
    """Wraps an ASGI HTTP app: 413 over `cap_for(path)` bytes, 408 when the body stalls for `timeout` s."""

    def __init__(self, app: App, *, cap_for: Callable[[str], int], timeout: float) -> None:
        self.app = app
        self.cap_for = cap_for
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection scope (only `http` scopes are checked)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.cap_for(scope.get("path", ""))
        declared = declared_length(scope.get("headers") or [])
        if declared is not None and declared > cap:
            await refuse(send, 413, f"body over {cap} bytes")
            return
        await self.app(scope, _LimitedReceive(receive, send, cap, self.timeout), send)


class _LimitedReceive:
    """The `receive` Django gets: counts body bytes and times each wait until the body is complete."""

    def __init__(self, receive: Receive, send: Send, cap: int, timeout: float) -> None:
        self.receive, self.send, self.cap, self.timeout = receive, send, cap, timeout
        self.received = 0
        self.complete = False  # the last body message arrived (or we answered instead)

    async def __call__(self) -> Message:
        if self.complete:
            return await self.receive()
        try:
            message = await asyncio.wait_for(self.receive(), self.timeout)
        except TimeoutError:
            return await self._refuse(408, f"no request body for {self.timeout:g} s")
        if message["type"] != "http.request":
            return message
        self.received += len(message.get("body", b""))
        if self.received > self.cap:
            return await self._refuse(413, f"body over {self.cap} bytes")
        if not message.get("more_body", False):
            self.complete = True
        return message

    async def _refuse(self, status: int, message: str) -> Message:
        self.complete = True
        await refuse(self.send, status, message)
        return DISCONNECT


def settings_cap(path: str) -> int:
    """The cap for `path`: CIRCLES_WEBHOOK_MAX_BYTES under /webhooks/, else CIRCLES_HTTP_MAX_BODY_BYTES."""
    from django.conf import settings

    if path.startswith("/webhooks/"):
        return settings.CIRCLES_WEBHOOK_MAX_BYTES
    return settings.CIRCLES_HTTP_MAX_BODY_BYTES
