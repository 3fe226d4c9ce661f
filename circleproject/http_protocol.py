"""The HTTP protocol server processes run: the request-head timeout, and no cycle left by an upgrade.

uvicorn's `HttpToolsProtocol` and its `httptools.HttpRequestParser` refer to each other (the
parser calls the protocol back). When a connection upgrades to a WebSocket, the transport is
handed to the WebSocket protocol and nothing else refers to the HTTP one, but the pair keeps
itself alive: reference counting never frees it, and the cyclic collector has to find it, with
its `FlowControl`, scope and headers. With 1,000 subscribers connecting that is ~1,000 of each
for a collection to walk and free (docs/benchmarks/live.md). Dropping the parser once the upgrade
is done breaks the cycle, so the HTTP side of an upgraded connection is freed the moment the
WebSocket protocol has taken over.
"""

from __future__ import annotations

from circleproject.header_timeout import HeaderTimeoutProtocol


class CirclesHttpProtocol(HeaderTimeoutProtocol):
    """`HeaderTimeoutProtocol` that lets go of its parser when the connection becomes a WebSocket."""

    def handle_websocket_upgrade(self) -> None:
        """Hand the transport to the WebSocket protocol, then drop the parser (the cycle's other half)."""
        super().handle_websocket_upgrade()
        # Still on the parser's stack (`data_received` -> feed_data raised HttpParserUpgrade),
        # but nothing below uses it again: the transport now delivers to the WebSocket protocol.
        self.parser = None  # type: ignore[assignment]
