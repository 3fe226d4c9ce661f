"""The WebSocket origin policy: browsers must come from an allowed origin."""

from typing import Any
from urllib.parse import ParseResult

from channels.security.websocket import OriginValidator


class CircleOriginValidator(OriginValidator):
    """Channels' OriginValidator with an explicit switch for clients that send no Origin.

    Browsers always send `Origin`, so checking it stops other sites' pages from talking
    to a circle with the visitor's wallet. Native clients (the CLI, services) send none;
    `allow_missing` decides whether they are let in. A denied handshake is refused
    with HTTP 403 before the WebSocket opens.
    """

    def __init__(self, application: Any, allowed_origins: list[str], *, allow_missing: bool = True) -> None:
        super().__init__(application, allowed_origins)
        self.allow_missing = allow_missing

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        """Accept a missing Origin per policy; otherwise match the allowed patterns."""
        if parsed_origin is None:
            return self.allow_missing or "*" in self.allowed_origins
        return self.validate_origin(parsed_origin)
