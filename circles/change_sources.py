"""What feeds this process's `ChangeHub`: the database log, and the fast path (Redis pub/sub or in-process).

`process_hub()` is the hub of the running loop, made on first use with:

* `DatabaseLog`: the log reads (`circles.changes`) on the database thread pool;
* with `REDIS_URL`, `RedisChanges`: one pub/sub connection for the whole process, subscribed to
  `<CIRCLES_QUEUE_STREAM>:changes:<circle_id>` of each watched circle (SUBSCRIBE on its first
  watcher, UNSUBSCRIBE after its last), never one per subscriber. It also holds an anchor channel
  of its own, so the connection stays subscribed with no circle watched, and a (re)subscription,
  after a lost connection or a Redis restart, is noticed: every watched circle is subscribed again
  and, once each is confirmed, compared with the log (what was published meanwhile is read there);
* without it (embedded mode), `EmbeddedChanges`: an `executor.change_feed` sink, called on the
  committing thread, that encodes the changes there and hands them to the loop.
"""

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import Any

import redis
from django.conf import settings

from circles.change_hub import Change, ChangeHub
from circles.changes import change_object, changes_after, head_seq, head_seqs, oldest_seq
from circles.lookups import database_read
from executor import change_feed
from executor.redis_clients import async_client

logger = logging.getLogger("circles.change_hub")


@database_read
def _read_after(circle_id: int, since: int, limit: int, collection: str | None, prefix: str) -> list[Change]:
    rows = changes_after(circle_id, since, collection=collection, prefix=prefix, limit=limit)
    return [Change.from_object(change_object(row)) for row in rows]  # encoded off the loop


@database_read
def _read_heads(circle_ids: list[int]) -> dict[int, int]:
    return head_seqs(circle_ids)


@database_read
def _read_window(circle_id: int) -> tuple[int, int]:
    return head_seq(circle_id), oldest_seq(circle_id)


class DatabaseLog:
    """The hub's `Log`: the change log in the database, read on the database thread pool."""

    async def after(
        self, circle_id: int, since: int, *, limit: int, collection: str | None = None, prefix: str = ""
    ) -> list[Change]:
        """Up to `limit` changes numbered above `since`, in order, JSON-encoded."""
        return await _read_after(circle_id, since, limit, collection, prefix)

    async def heads(self, circle_ids: Sequence[int]) -> dict[int, int]:
        """The last committed seq of each circle."""
        return await _read_heads(list(circle_ids))

    async def window(self, circle_id: int) -> tuple[int, int]:
        """The circle's (head, oldest kept seq)."""
        return await _read_window(circle_id)


class RedisChanges:
    """The pub/sub side of the hub: one connection, a channel per watched circle."""

    def __init__(self, hub: ChangeHub, stream: str) -> None:
        self.hub = hub
        self.stream = stream
        self.anchor = f"{stream}:changes:listener".encode()
        self.prefix = change_feed.changes_channel(stream, 0)[:-1].encode()
        self.pubsub: Any = None  # the current connection's PubSub, once its anchor is confirmed
        self.subscribed = False
        self.task: asyncio.Task[None] | None = None

    def channel(self, circle_id: int) -> str:
        """The pub/sub channel of a circle's changes."""
        return change_feed.changes_channel(self.stream, circle_id)

    def start(self) -> None:
        """Start listening on the running loop."""
        self.task = asyncio.get_running_loop().create_task(self._listen())

    def stop(self) -> None:
        """Stop listening."""
        if self.task is not None:
            self.task.cancel()

    def watching(self, circle_id: int) -> None:
        """The hub's `on_first`: subscribe to the circle (now if connected, else at the reconnect)."""
        self._command("SUBSCRIBE", circle_id)

    def not_watching(self, circle_id: int) -> None:
        """The hub's `on_last`: unsubscribe from the circle."""
        self._command("UNSUBSCRIBE", circle_id)

    def _command(self, command: str, circle_id: int) -> None:
        if self.subscribed and self.pubsub is not None:
            asyncio.get_running_loop().create_task(self._send(self.pubsub, command, self.channel(circle_id)))

    async def _send(self, pubsub: Any, command: str, *channels: str) -> None:
        """Write a (UN)SUBSCRIBE on the listening connection (its reply comes to the listener)."""
        try:
            await pubsub.connection.send_command(command, *channels, check_health=False)
        except (redis.RedisError, OSError, AttributeError) as exc:  # the listener reconnects and resubscribes
            logger.info("could not %s %s: %s", command, channels[:1], exc)

    def circle_of(self, channel: bytes) -> int | None:
        """The circle id of one of our channels."""
        if not channel.startswith(self.prefix):
            return None
        try:
            return int(channel[len(self.prefix) :])
        except ValueError:
            return None

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            client = async_client(timeout=None, connect_timeout=1)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.anchor)
                async for message in pubsub.listen():
                    kind = message["type"]
                    if kind == "message":
                        self._heard(message["channel"], message["data"])
                    elif kind == "subscribe":
                        if message["channel"] == self.anchor:
                            # A new connection (redis-py also reconnects by itself, resubscribing
                            # only the anchor): subscribe every watched circle again.
                            self.pubsub, self.subscribed, backoff = pubsub, True, 0.1
                            channels = [self.channel(circle_id) for circle_id in self.hub.watched()]
                            if channels:
                                await self._send(pubsub, "SUBSCRIBE", *channels)
                        else:
                            circle_id = self.circle_of(message["channel"])
                            if circle_id is not None:  # listening now: what came before is in the log
                                self.hub.check_soon([circle_id])
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError) as exc:
                logger.warning("change listener lost Redis (%s); retrying in %.1fs", exc, backoff)
            finally:
                self.subscribed, self.pubsub = False, None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _heard(self, channel: bytes, data: bytes) -> None:
        circle_id = self.circle_of(channel)
        if circle_id is None:
            return
        try:
            change = Change.from_json(data)
        except (ValueError, KeyError, TypeError):
            logger.warning("not a change on %r", channel[:100])
            return
        self.hub.heard(circle_id, change)


class EmbeddedChanges:
    """The in-process side of the hub (no REDIS_URL): an `executor.change_feed` sink."""

    def __init__(self, hub: ChangeHub) -> None:
        self.hub = hub
        self.remove: Any = None

    def start(self) -> None:
        """Register the sink."""
        self.remove = change_feed.add_sink(self.sink)

    def stop(self) -> None:
        """Remove the sink."""
        if self.remove is not None:
            self.remove()

    def sink(self, circle_id: int, changes: Sequence[dict[str, Any]]) -> None:
        """Called on the committing thread: encode here, hand over to the loop."""
        if circle_id not in self.hub.feeds:  # a racing first watch reads its baseline after this commit
            return
        encoded = [Change.from_object(change) for change in changes]
        with contextlib.suppress(RuntimeError):  # the loop has closed
            self.hub.loop.call_soon_threadsafe(self._heard, circle_id, encoded)

    def _heard(self, circle_id: int, changes: list[Change]) -> None:
        for change in changes:
            self.hub.heard(circle_id, change)


_lock = threading.Lock()
_current: tuple[ChangeHub, RedisChanges | EmbeddedChanges] | None = None


def process_hub() -> ChangeHub:
    """The hub of the running loop (made, with its sources, on first use)."""
    global _current
    loop = asyncio.get_running_loop()
    with _lock:
        if _current is not None and _current[0].loop is loop:
            return _current[0]
        if _current is not None:  # a previous loop's (tests): let it go
            _current[1].stop()
            _current[0].stop()
        hub = ChangeHub(DatabaseLog(), check_seconds=settings.CIRCLES_CHANGES_CHECK_SECONDS)
        source: RedisChanges | EmbeddedChanges
        if settings.REDIS_URL:
            source = RedisChanges(hub, settings.CIRCLES_QUEUE_STREAM)
            hub.on_first, hub.on_last = source.watching, source.not_watching
        else:
            source = EmbeddedChanges(hub)
        source.start()
        hub.start()
        _current = (hub, source)
        return hub
