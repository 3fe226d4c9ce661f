"""uvicorn's httptools protocol with a request-head timeout (slow-header clients are closed).

uvicorn has no such timeout: `timeout_keep_alive` only runs between requests, after a response,
and is cancelled by the first byte of the next one; a connection that sends half a request head
(or nothing) stays open for as long as the client keeps it. Here every request head (request line
and headers) must be complete within `CIRCLES_HTTP_HEADER_TIMEOUT_SECONDS` of the connection
being made (first request) or of its first byte (later requests on a kept-alive connection);
otherwise the connection is closed without an answer, as nginx does for `client_header_timeout`.
The body has its own timeout in the ASGI app (`circleproject.body_limits`). A WebSocket upgrade
completes its head like any request, so the timer is gone before the WebSocket protocol takes over.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that closes a connection whose request head is late."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from django.conf import settings

        super().__init__(*args, **kwargs)
        self.header_timeout = float(settings.CIRCLES_HTTP_HEADER_TIMEOUT_SECONDS)
        self.header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request head."""
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        """A request starts (parser callback): the clock runs unless it already does."""
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        """The head arrived in time (parser callback): stop the clock, serve the request."""
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection ended: no clock left behind."""
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self.header_timer is None and self.header_timeout > 0:
            self.header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _expired(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            self.logger.debug("request head not complete within %gs: connection closed", self.header_timeout)
            self.transport.close()
