"""Telling every ASGI process about committed record changes: the fast path of the live feed.

The change log in the database (`circles.changes`) is the truth; this is only the fast path.
After a run's transaction commits, `publish(circle_id, changes)` sends each change once per
circle (not once per subscriber):

* with `REDIS_URL`, one PUBLISH per change on `<stream>:changes:<circle_id>` (`changes_channel`),
  the body the change object as JSON (`circles.changes.change_object`); each ASGI process
  subscribes to the circles its clients watch and fans out to them itself;
* embedded (no `REDIS_URL`), to the sinks this process registered (`add_sink`), called on the
  committing thread, which hand the changes to their event loop.

A lost message (a Redis restart, a listener reconnecting) is not a lost change: a process
that sees a gap in a circle's numbers, or reconnects, reads what it missed from the log.
"""

import logging
import threading
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import orjson
import redis
from django.conf import settings

from executor.redis_clients import sync_client

logger = logging.getLogger("executor.change_feed")

Change = dict[str, Any]  # circles.changes.change_object
Sink = Callable[[int, Sequence[Change]], None]  # (circle id, its changes in seq order)

_sinks: list[Sink] = []
_sinks_lock = threading.Lock()


def changes_channel(stream: str, circle_id: int) -> str:
    """The pub/sub channel of one circle's changes in the deployment of queue `stream`."""
    return f"{stream}:changes:{circle_id}"


def add_sink(sink: Sink) -> Callable[[], None]:
    """Embedded mode: call `sink` with every change published in this process; returns the remover."""
    with _sinks_lock:
        _sinks.append(sink)

    def remove() -> None:
        with _sinks_lock:
            if sink in _sinks:
                _sinks.remove(sink)

    return remove


@cache
def _publisher() -> redis.Redis:
    return sync_client(timeout=2, connect_timeout=1)


def publish(circle_id: int, changes: Sequence[Change]) -> None:
    """Announce `changes` of circle `circle_id` (committed, in seq order). Never raises.

    A failed publish is logged and costs only latency: listeners find the gap at the circle's
    next change or at their next check of the log (CIRCLES_CHANGES_CHECK_SECONDS).
    """
    if not changes:
        return
    if not settings.REDIS_URL:
        with _sinks_lock:
            sinks = list(_sinks)
        for sink in sinks:
            try:
                sink(circle_id, changes)
            except Exception:
                logger.exception("a change sink failed")
        return
    channel = changes_channel(settings.CIRCLES_QUEUE_STREAM, circle_id)
    try:
        with _publisher().pipeline(transaction=False) as pipe:
            for change in changes:
                pipe.publish(channel, orjson.dumps(change))
            pipe.execute()
    except (redis.RedisError, OSError) as exc:
        logger.warning(
            "could not publish %d change(s) of circle %s (%s): listeners read them from the log",
            len(changes),
            circle_id,
            exc,
        )
