"""Draining the circle WebSockets of this process before it exits (graceful shutdown).

Every `CircleConsumer` registers itself in `live` on connect (a WeakSet: a forgotten entry
cannot keep a consumer alive). On SIGTERM `circleproject.serve.CirclesServer` calls
`drain_all()`, which asks every live connection at once to `drain(grace)`:

1. stop taking requests: from now on each request is answered -32012 `Executor unavailable`
   with `{"reason": "server shutting down"}` (a notification gets nothing);
2. wait for the requests already in flight (a `play` gets its worker's result, or its own
   -32000/-32012) up to `CIRCLES_SHUTDOWN_GRACE_SECONDS` (default 10);
3. close the socket with 1001 "server shutting down".

Requests still running when the grace ends are answered -32012 before the close, so a
client never loses a request silently.
"""

import asyncio
import logging
import weakref
from typing import Any, Protocol

from django.conf import settings

from circles.jsonrpc import EXECUTOR_UNAVAILABLE, RpcError
from circles.metrics import CONNECTIONS

logger = logging.getLogger("circles.shutdown")

CLOSE_GOING_AWAY = 1001
SHUTDOWN_REASON = "server shutting down"


def shutting_down() -> RpcError:
    """The -32012 answered to a request the draining server will not run (a fresh one each time)."""
    return RpcError(EXECUTOR_UNAVAILABLE, data={"reason": SHUTDOWN_REASON})


class Drainable(Protocol):
    """A live connection, as the drain sees it."""

    closing: bool

    async def drain(self, grace: float) -> None:
        """Refuse new requests, let in-flight ones finish within `grace` seconds, close 1001."""


live: weakref.WeakSet[Drainable] = weakref.WeakSet()


def track(connection: Drainable) -> None:
    """A connection opened: count it, and drain it on shutdown."""
    if connection not in live:
        live.add(connection)
        CONNECTIONS.inc()


def untrack(connection: Drainable) -> None:
    """A connection closed."""
    if connection in live:
        live.discard(connection)
        CONNECTIONS.dec()


def grace_seconds() -> float:
    """How long in-flight requests may take once the drain started."""
    return float(getattr(settings, "CIRCLES_SHUTDOWN_GRACE_SECONDS", 10.0))


async def drain_all(grace: float | None = None) -> None:
    """Drain every live connection of this process concurrently (called once, on SIGTERM)."""
    connections = [connection for connection in list(live) if not connection.closing]
    if not connections:
        return
    grace = grace_seconds() if grace is None else grace
    logger.info("shutdown: draining %d connection(s), grace %.1fs", len(connections), grace)
    results: list[Any] = await asyncio.gather(
        *(connection.drain(grace) for connection in connections), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            logger.warning("shutdown: a connection failed to drain: %r", result)
