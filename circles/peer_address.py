"""The client address of a WebSocket connection, resolved through the trusted proxies.

The same rule as for HTTP requests (`circles.client_address`): `X-Forwarded-For` counts only
when the direct peer is in `CIRCLES_TRUSTED_PROXIES`, and then the right-most entry that is not
itself a trusted proxy is the client.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings

from circles.client_address import client_address, trusted_networks


def forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Every `X-Forwarded-For` header of an ASGI scope joined in order (as proxies and Django do), or None."""
    values = [value.decode("latin-1") for name, value in headers if name.lower() == b"x-forwarded-for"]
    return ", ".join(values) if values else None


def scope_address(scope: Mapping[str, Any]) -> str | None:
    """The client address of the connection with ASGI `scope`; None when it cannot be told."""
    client = scope.get("client")
    peer = str(client[0]) if client else None
    return client_address(
        peer,
        forwarded_for(scope.get("headers") or ()),
        trusted_networks(tuple(settings.CIRCLES_TRUSTED_PROXIES)),
    )
