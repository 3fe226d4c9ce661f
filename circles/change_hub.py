"""This process's view of circles' record changes: one feed per watched circle, in seq order, gap-free.

The change log in the database is the truth (`circles.changes`); the pub/sub messages
(`executor.change_feed`) are only the fast path. For every circle some subscription of this
process watches, the hub keeps a `Feed`: the last seq it handed on (`last`), and the watchers,
by collection. A change heard (`heard`) is handed on only in order:

* its seq is `last + 1`: handed to the watchers of its collection at once;
* at or below `last`: a duplicate (the log already gave it), dropped;
* above `last + 1`: something was missed (a lost message, a Redis restart, two writers
  publishing out of commit order), so the hub reads the gap from the log first (`Log.after`,
  one read per circle for all its watchers), then hands on the gap and what was held back.

A lost *last* message leaves no gap to see, so the hub also compares its feeds with the circles'
heads (`Log.heads`, one query for all of them) every `check_seconds` and whenever the transport
says it may have missed something (`check_soon`: a pub/sub (re)subscription), and fills from the
log. A watcher therefore gets every change of its collection after the moment it started
watching, once each, in seq order.

Each change is decoded once per process and carries its JSON text (`Change.body`), so a
subscription builds its notification by joining strings, not by encoding. The hub knows nothing
of Redis: `circles.change_sources` feeds it (pub/sub, or the in-process sinks of embedded mode).
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from circles import metrics

logger = logging.getLogger("circles.change_hub")

FILL_PAGE = 1000  # changes read from the log per query when filling a gap
RETRY_SECONDS = 1.0  # after a failed read of the log, before trying again


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change as this process passes it on: what filters need, and its JSON text."""

    seq: int
    collection: str
    key: str
    body: str  # the change object (circles.changes.change_object) as JSON

    @classmethod
    def from_object(cls, change: dict[str, Any]) -> "Change":
        """From a change object (a log row's `change_object`, an embedded sink's dict): encoded here."""
        return cls(change["seq"], change["collection"], change["key"], orjson.dumps(change).decode())

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Change":
        """From a published message's body (ValueError, KeyError or TypeError when it is not a change)."""
        change = orjson.loads(raw)
        body = raw if isinstance(raw, str) else raw.decode()
        seq = change["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise TypeError("seq is not an integer")
        return cls(seq, str(change["collection"]), str(change["key"]), body)


class Log(Protocol):
    """The change log as the hub reads it (the database in production: `circles.change_sources`)."""

    async def after(
        self, circle_id: int, since: int, *, limit: int, collection: str | None = None, prefix: str = ""
    ) -> list[Change]:
        """Up to `limit` changes numbered above `since`, in order (optionally of one collection/prefix)."""
        ...

    async def heads(self, circle_ids: Sequence[int]) -> dict[int, int]:
        """The last committed seq of each circle (0: none yet)."""
        ...


class Watcher(Protocol):
    """Something that wants a circle's changes of one collection (a records subscription)."""

    def changed(self, change: Change) -> None:
        """The next change of the watched collection (called on the loop, in seq order, once each)."""


class Feed:
    """One watched circle: how far it was handed on, who watches, what waits for a gap to be filled."""

    __slots__ = ("circle_id", "filling", "known", "last", "pending", "ready", "wanted", "watchers")

    def __init__(self, circle_id: int, ready: asyncio.Future[int]) -> None:
        self.circle_id = circle_id
        self.known = False  # whether the baseline (the head when watching began) has been read
        self.last = 0  # the last seq handed on (the baseline at first)
        self.wanted = 0  # the highest seq known to exist (heard, or a head read)
        self.watchers: dict[str, set[Watcher]] = {}
        self.pending: list[Change] = []  # heard while the baseline or a fill was being read
        self.filling: asyncio.Task[None] | None = None
        self.ready = ready  # resolves to the baseline

    def watching(self) -> bool:
        """Whether anyone still watches."""
        return any(self.watchers.values())


class ChangeHub:
    """The feeds of the circles this process watches (one hub per process and event loop).

    `on_first(circle_id)` / `on_last(circle_id)` tell the transport to start / stop listening
    for a circle (SUBSCRIBE / UNSUBSCRIBE); they are called on the loop and must not block.
    """

    def __init__(
        self,
        log: Log,
        *,
        check_seconds: float,
        on_first: Callable[[int], None] = lambda circle_id: None,
        on_last: Callable[[int], None] = lambda circle_id: None,
        fill_page: int = FILL_PAGE,
    ) -> None:
        self.log = log
        self.check_seconds = check_seconds
        self.on_first = on_first
        self.on_last = on_last
        self.fill_page = fill_page
        self.feeds: dict[int, Feed] = {}
        self.fills = 0  # gap fills started (for tests and metrics)
        self._due: set[int] = set()
        self._due_all = False
        self._wake = asyncio.Event()
        self._checker: asyncio.Task[None] | None = None
        self.loop = asyncio.get_running_loop()

    # --- watching ------------------------------------------------------------------------------

    async def watch(self, circle_id: int, collection: str, watcher: Watcher) -> int:
        """Hand `watcher` every change of `collection` in the circle from now on; returns the seq
        it starts after (every later change of the collection reaches it)."""
        self.start()
        feed = self.feeds.get(circle_id)
        created = feed is None
        if feed is None:
            feed = self.feeds[circle_id] = Feed(circle_id, self.loop.create_future())
            self.on_first(circle_id)  # listen first: a change published after the baseline read is heard
            self.loop.create_task(self._baseline(feed))
        if not created and feed.known:
            feed.watchers.setdefault(collection, set()).add(watcher)
            return feed.last  # synchronously: nothing was handed on between the read and the add
        feed.watchers.setdefault(collection, set()).add(watcher)
        try:
            return await asyncio.shield(feed.ready)
        except BaseException:
            self.unwatch(circle_id, collection, watcher)
            raise

    def unwatch(self, circle_id: int, collection: str, watcher: Watcher) -> None:
        """Stop handing changes to `watcher`; the circle's feed ends with its last watcher."""
        feed = self.feeds.get(circle_id)
        if feed is None:
            return
        watchers = feed.watchers.get(collection)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del feed.watchers[collection]
        if not feed.watching():
            self._end(feed)

    def watched(self) -> list[int]:
        """The circles watched now."""
        return list(self.feeds)

    def _end(self, feed: Feed) -> None:
        if self.feeds.get(feed.circle_id) is feed:
            del self.feeds[feed.circle_id]
            self.on_last(feed.circle_id)
        if feed.filling is not None:
            feed.filling.cancel()

    async def _baseline(self, feed: Feed) -> None:
        try:
            head = (await self.log.heads([feed.circle_id]))[feed.circle_id]
        except Exception as exc:
            logger.warning("could not read the change head of circle %s: %s", feed.circle_id, exc)
            self._end(feed)
            feed.ready.set_exception(exc)
            feed.ready.exception()  # retrieved here: a watcher may have gone before it could
            return
        feed.last, feed.known = head, True
        feed.wanted = max(feed.wanted, head)
        feed.ready.set_result(head)
        if self.feeds.get(feed.circle_id) is feed:
            self._release(feed)
            if feed.last < feed.wanted:
                self._fill(feed)

    # --- hearing -------------------------------------------------------------------------------

    def heard(self, circle_id: int, change: Change) -> None:
        """A change announced on the fast path (any order, maybe twice, maybe never)."""
        feed = self.feeds.get(circle_id)
        if feed is None:
            return
        if change.seq > feed.wanted:
            feed.wanted = change.seq
        if not feed.known or feed.filling is not None:
            feed.pending.append(change)
        elif change.seq == feed.last + 1:
            self._hand_on(feed, change)
        elif change.seq > feed.last:
            feed.pending.append(change)
            self._fill(feed)

    def _hand_on(self, feed: Feed, change: Change) -> None:
        feed.last = change.seq
        watchers = tuple(feed.watchers.get(change.collection, ()))
        for watcher in watchers:
            try:
                watcher.changed(change)
            except Exception:
                logger.exception("a change watcher failed")
        if watchers:
            metrics.RECORD_DELIVERIES.inc(len(watchers))

    def _release(self, feed: Feed) -> None:
        """Hand on what was held back, as far as it runs without a gap."""
        if not feed.pending:
            return
        held = sorted(feed.pending, key=lambda change: change.seq)
        feed.pending = []
        for index, change in enumerate(held):
            if change.seq <= feed.last:
                continue
            if change.seq != feed.last + 1:
                feed.pending = held[index:]
                return
            self._hand_on(feed, change)

    def _fill(self, feed: Feed) -> None:
        if feed.filling is None and feed.known and self.feeds.get(feed.circle_id) is feed:
            self.fills += 1
            metrics.RECORD_GAP_FILLS.inc()
            feed.filling = self.loop.create_task(self._filling(feed))

    def _lagging(self, feed: Feed) -> bool:
        """Whether `feed` is still this hub's and behind a seq known to exist."""
        return self.feeds.get(feed.circle_id) is feed and feed.known and feed.last < feed.wanted

    async def _filling(self, feed: Feed) -> None:
        """Read the log after `last` until the feed reaches every seq known to exist."""
        try:
            while self._lagging(feed):
                try:
                    rows = await self.log.after(feed.circle_id, feed.last, limit=self.fill_page)
                except Exception as exc:
                    logger.warning("could not read the change log of circle %s: %s", feed.circle_id, exc)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                if self.feeds.get(feed.circle_id) is not feed:
                    return
                if not rows:  # nothing kept after `last`, yet more was committed: pruned past us
                    logger.warning(
                        "circle %s: changes %s..%s are no longer kept; skipped",
                        feed.circle_id,
                        feed.last + 1,
                        feed.wanted,
                    )
                    feed.last = feed.wanted
                for change in rows:
                    if change.seq <= feed.last:
                        continue
                    if change.seq != feed.last + 1:
                        logger.warning(
                            "circle %s: changes %s..%s are no longer kept; skipped",
                            feed.circle_id,
                            feed.last + 1,
                            change.seq - 1,
                        )
                    feed.wanted = max(feed.wanted, change.seq)
                    self._hand_on(feed, change)
                self._release(feed)
        finally:
            feed.filling = None
        if self.feeds.get(feed.circle_id) is feed:
            self._release(feed)  # heard after the last read
            if feed.last < feed.wanted:
                self._fill(feed)

    # --- checking against the log --------------------------------------------------------------

    def start(self) -> None:
        """Start the periodic check (once; `watch` does it)."""
        if self._checker is None or self._checker.done():
            self._checker = self.loop.create_task(self._checking())

    def check_soon(self, circle_ids: Sequence[int] | None = None) -> None:
        """Compare these circles (None: all watched) with the log at once: something may have been missed."""
        if circle_ids is None:
            self._due_all = True
        else:
            self._due.update(circle_ids)
        self._wake.set()

    async def check(self, circle_ids: Sequence[int] | None = None) -> None:
        """Compare the feeds of `circle_ids` (None: all) with the circles' heads; fill what lags."""
        ids = [cid for cid in (self.watched() if circle_ids is None else circle_ids) if cid in self.feeds]
        if not ids:
            return
        heads = await self.log.heads(ids)
        for circle_id, head in heads.items():
            feed = self.feeds.get(circle_id)
            if feed is None or not feed.known:
                continue
            feed.wanted = max(feed.wanted, head)
            if feed.last < feed.wanted:
                self._fill(feed)

    async def _checking(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.check_seconds)
            self._wake.clear()
            everything = self._due_all or not self._due
            due, self._due, self._due_all = list(self._due), set(), False
            try:
                await self.check(None if everything else due)
            except Exception as exc:
                logger.warning("could not compare the watched circles with the change log: %s", exc)

    def stop(self) -> None:
        """Stop the periodic check and every fill (the process's loop ends)."""
        if self._checker is not None:
            self._checker.cancel()
        for feed in list(self.feeds.values()):
            if feed.filling is not None:
                feed.filling.cancel()
        self.feeds.clear()
