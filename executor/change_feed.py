"""Telling every ASGI process about committed record changes: the fast path of the live feed.

The change log in the database (`circles.changes`) is the truth; this is only the fast path.
After a run's transaction commits, `publish(circle_id, changes)` sends each change once per
circle (not once per subscriber):

* with `REDIS_URL`, one PUBLISH per change on `<stream>:changes:<circle_id>` (`changes_channel`),
  the body the change object as JSON (`circles.changes.change_object`); each ASGI process
  subscribes to the circles its clients watch and fans out to them itself;
* embedded (no `REDIS_URL`), to the sinks this process registered (`add_sink`), called on the
  committing thread, which hand the changes to their event loop.

A queue worker's run does not pay a Redis round trip of its own for this: inside `collected()`
the messages are kept instead of sent, and the worker sends them in the one command that also
answers and acknowledges the job (`executor.queue.JobQueue.finish`), changes first.

A lost message (a Redis restart, a listener reconnecting) is not a lost change: a process
that sees a gap in a circle's numbers, or reconnects, reads what it missed from the log.
"""

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

import orjson
import redis
from django.conf import settings

from executor.redis_clients import sync_client

logger = logging.getLogger("executor.change_feed")

Change = dict[str, Any]  # circles.changes.change_object
Sink = Callable[[int, Sequence[Change]], None]  # (circle id, its changes in seq order)
Message = tuple[str, bytes]  # (pub/sub channel, the change as JSON)

_sinks: list[Sink] = []
_sinks_lock = threading.Lock()
_held = threading.local()  # .messages: the list `collected()` fills on this thread, or None


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


@contextmanager
def collected() -> Iterator[list[Message]]:
    """While the block runs, keep this thread's published changes (with `REDIS_URL`) in the list
    it yields instead of sending them; the caller sends them (a worker: with the job's answer).

    Embedded mode is unaffected (its sinks are called at once). A block that raises sends what
    it kept before the exception goes on: a committed change is never left unannounced.
    """
    previous = getattr(_held, "messages", None)
    messages: list[Message] = []
    _held.messages = messages
    try:
        yield messages
    except BaseException:
        _held.messages = previous
        send(messages)
        raise
    finally:
        _held.messages = previous


def send(messages: Sequence[Message]) -> None:
    """PUBLISH `messages` in one round trip (a pipeline). Never raises: see `publish`."""
    if not messages:
        return
    try:
        with _publisher().pipeline(transaction=False) as pipe:
            for channel, body in messages:
                pipe.publish(channel, body)
            pipe.execute()
    except (redis.RedisError, OSError) as exc:
        logger.warning(
            "could not publish %d change(s) (%s): listeners read them from the log", len(messages), exc
        )


def publish(circle_id: int, changes: Sequence[Change]) -> None:
    """Announce `changes` of circle `circle_id` (committed, in seq order). Never raises.

    A failed publish is logged and costs only latency: listeners find the gap at the circle's
    next change or at their next check of the log (CIRCLES_CHANGES_CHECK_SECONDS). Inside
    `collected()` the messages are kept for the caller to send instead.
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
    messages = [(channel, orjson.dumps(change)) for change in changes]
    held = getattr(_held, "messages", None)
    if held is not None:
        held.extend(messages)
        return
    send(messages)
