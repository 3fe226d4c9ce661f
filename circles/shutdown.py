"""Draining the circle WebSockets of this process before it exits (graceful shutdown).

Every `CircleConsumer` registers itself in `live` on connect (a WeakSet: a forgotten entry
cannot keep a consumer alive). On SIGTERM `circleproject.serve.CirclesServer` calls
`drain_all()`, which for every live connection at once:

1. stops taking requests: from now on each request is answered -32012 `Executor unavailable`
   with `{"reason": "server shutting down"}` (a notification gets nothing);
2. waits for the requests already in flight (a `play` gets its worker's result, or its own
   -32000/-32012) up to `CIRCLES_SHUTDOWN_GRACE_SECONDS` (default 10);
3. closes the socket with 1001 "server shutting down".

Requests still running when the grace ends are answered -32012 before the close, so a
client never loses a request silently.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING, Any

from django.conf import settings

from circleproject.metrics import CONNECTIONS
from circles.jsonrpc import EXECUTOR_UNAVAILABLE, RpcError

if TYPE_CHECKING:
    from circles.consumer import CircleConsumer

logger = logging.getLogger("circles.shutdown")

CLOSE_GOING_AWAY = 1001
SHUTDOWN_REASON = "server shutting down"
SHUTTING_DOWN = RpcError(EXECUTOR_UNAVAILABLE, "Executor unavailable", {"reason": SHUTDOWN_REASON})

live: weakref.WeakSet[CircleConsumer] = weakref.WeakSet()


def track(consumer: CircleConsumer) -> None:
    """A connection opened: count it, and drain it on shutdown."""
    if consumer not in live:
        live.add(consumer)
        CONNECTIONS.inc()


def untrack(consumer: CircleConsumer) -> None:
    """A connection closed."""
    if consumer in live:
        live.discard(consumer)
        CONNECTIONS.dec()


def grace_seconds() -> float:
    """How long in-flight requests may take once the drain started."""
    return float(getattr(settings, "CIRCLES_SHUTDOWN_GRACE_SECONDS", 10.0))


async def drain_connection(consumer: CircleConsumer, grace: float) -> None:
    """Drain one connection: refuse new requests, let in-flight ones finish (bounded), close 1001."""
    consumer.draining = True
    pending = set(consumer.tasks)
    if pending:
        _, late = await asyncio.wait(pending, timeout=grace)
        if late:
            consumer.log.warning("shutdown: %d request(s) still running after %.1fs", len(late), grace)
            give_up_waiting(consumer)
            _, late = await asyncio.wait(late, timeout=1.0)
            for task in late:  # not a `play` (those were just answered): nothing left to say
                task.cancel()
    await consumer.shut(CLOSE_GOING_AWAY, SHUTDOWN_REASON)


def give_up_waiting(consumer: CircleConsumer) -> None:
    """Answer -32012 to every `play` of `consumer` still waiting for its result."""
    play_runner = getattr(consumer, "play_runner", None)  # none yet if the handshake never finished
    if play_runner is not None:
        play_runner.give_up(SHUTTING_DOWN)


async def drain_all(grace: float | None = None) -> None:
    """Drain every live connection of this process concurrently (called once, on SIGTERM)."""
    consumers = [consumer for consumer in list(live) if not consumer.closing]
    if not consumers:
        return
    grace = grace_seconds() if grace is None else grace
    logger.info("shutdown: draining %d connection(s), grace %.1fs", len(consumers), grace)
    results: list[Any] = await asyncio.gather(
        *(drain_connection(consumer, grace) for consumer in consumers), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            logger.warning("shutdown: a connection failed to drain: %r", result)
