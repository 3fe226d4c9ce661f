"""One `records` subscription: history after `since` from the log, then live changes from the hub.

The switch from history to live must lose nothing and repeat nothing. So the stream watches the
hub *first* (`open`): from then on every change of its collection reaches `changed`, and until
the stream is live those are kept in a buffer. `mark` is the seq the hub's feed was at when the
buffer became complete: it holds every matching change above `mark`. Once the subscribe answer
is out (`start`), the catch-up reads the log after `since` up to at least `mark`, page by page
(waiting for room in the connection's outbox between frames, so a long history never trips the
unread bound), then sends the buffered changes above what it sent, and goes live. Every
notification carries a seq above the last one sent (`cursor`), which makes the order strict.

Each history page is checked against the log's window *after* it was read: a prune between the
`since` check and the read (or between pages) would otherwise skip its stretch silently. When the
oldest change still kept is above the page's start, the subscription ends with -32006 (one last
frame with `error`, as a revoked one), and the client re-reads as it would have at subscribe.

A client that reads slowly while history is read only stops the catch-up; a buffer that would
grow past `buffer_limit` is dropped instead (the log still has all of it), `mark` moves up to
the change that overflowed it, and the catch-up reads that stretch from the log too. Live, a
change is pushed at once; the outbox bound then closes a connection that does not read (4408).

Live, a change also waits while the caller's standing is read again (`Gate`: after a
membership change of the circle, and without Redis notices at least every
CIRCLES_ROLE_CACHE_SECONDS while changes flow): a caller who may no longer read gets one last
frame with an `error` and nothing more.
"""

import asyncio
import logging
from typing import Protocol

from circles import metrics
from circles.change_hub import Change, ChangeHub, Log
from circles.jsonrpc import CHANGES_COMPACTED, RpcError

logger = logging.getLogger("circles.record_stream")

HISTORY_PAGE = 500  # changes per log read while catching up
RETRY_SECONDS = 1.0  # after a failed log read, before trying again


class HistoryLog(Log, Protocol):
    """The log as a stream reads it: the hub's reads, and the circle's kept window."""

    async def window(self, circle_id: int) -> tuple[int, int]:
        """The circle's (head, oldest kept seq); oldest is head + 1 when nothing is kept."""
        ...


def compacted(head: int, oldest: int) -> RpcError:
    """The -32006 of a history that is no longer kept (data: where the log starts, and its head)."""
    return RpcError(CHANGES_COMPACTED, data={"oldest": oldest, "head": head})


class Gate(Protocol):
    """Whether a subscriber may still read: trusted as long as nothing says otherwise."""

    def trusted(self) -> bool:
        """Whether the standing read last still holds (no membership change, not too old)."""

    async def recheck(self) -> RpcError | None:
        """Read the standing again: None when the caller may still read, else the refusal."""


class Outbox(Protocol):
    """Where a subscription's frames go (`circles.subscriptions.Subscriptions`)."""

    closed: bool

    def revoke(self, subscription: str, error: RpcError) -> None:
        """End `subscription` with `error` (its caller may no longer read)."""

    def push(self, frame: str) -> None:
        """Queue a frame; past the unread bound the connection is closed (4408)."""

    async def room(self) -> None:
        """Wait until the outbox is at most half full."""


def frame_head(subscription: str) -> str:
    """The start of this subscription's notification frames; a frame is head + change JSON + "}}"."""
    return f'{{"jsonrpc":"2.0","method":"subscription","params":{{"subscription":"{subscription}","result":'


class RecordStream:
    """The changes of one collection (keys starting with `prefix`) of one circle, after `since`."""

    def __init__(
        self,
        hub: ChangeHub,
        log: HistoryLog,
        outbox: Outbox,
        *,
        circle_id: int,
        collection: str,
        prefix: str = "",
        since: int | None = None,
        buffer_limit: int = 1000,
        page: int = HISTORY_PAGE,
        gate: "Gate | None" = None,
    ) -> None:
        self.hub, self.log, self.outbox = hub, log, outbox
        self.circle_id, self.collection, self.prefix, self.since = circle_id, collection, prefix, since
        self.buffer_limit, self.page = max(1, buffer_limit), page
        self.mark = 0
        self.cursor = 0  # the last seq sent (live)
        self.buffer: list[Change] = []
        self.live = False
        self.head = ""
        self.task: asyncio.Task[None] | None = None
        self.watching = False
        self.stopped = False
        self.gate = gate
        self.subscription = ""

    async def open(self) -> int:
        """Start watching the hub (before any history is read); returns the mark."""
        self.mark = await self.hub.watch(self.circle_id, self.collection, self)
        self.watching = True
        metrics.RECORD_SUBSCRIBERS.inc()
        if self.stopped:  # stopped while the hub read its baseline
            self.stop()
        return self.mark

    def changed(self, change: Change) -> None:
        """The hub's next change of the collection."""
        if self.prefix and not change.key.startswith(self.prefix):
            return
        if self.live and self.gate is not None and not self.gate.trusted():
            # The caller's standing may have changed: hold live changes until it is read again.
            self.live = False
            self.since = self.mark = self.cursor
            self.task = asyncio.get_running_loop().create_task(self.recheck())
        if self.live:
            if change.seq > self.cursor:
                self.cursor = change.seq
                self.outbox.push(self.head + change.body + "}}")
            return
        if len(self.buffer) >= self.buffer_limit:
            self.buffer.clear()  # the catch-up reads this stretch from the log instead
            self.mark = change.seq
            return
        self.buffer.append(change)

    def start(self, subscription: str) -> None:
        """The subscribe answer went out: send history, then live changes, as `subscription`."""
        self.subscription = subscription
        self.head = frame_head(subscription)
        self.task = asyncio.get_running_loop().create_task(self.catch_up())

    async def catch_up(self) -> None:
        """Send every matching change after `since` from the log up to `mark`, the buffer, then go live."""
        cursor = self.mark if self.since is None else self.since
        while cursor < self.mark:
            mark = self.mark
            try:
                rows = await self.log.after(
                    self.circle_id, cursor, limit=self.page, collection=self.collection, prefix=self.prefix
                )
                head, oldest = await self.log.window(self.circle_id)  # after the read: see above
            except Exception as exc:
                logger.warning("could not read the change log of circle %s: %s", self.circle_id, exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if oldest > cursor + 1:  # pruned past `cursor` since it was checked: this page may lack some
                self.end(compacted(head, oldest))
                return
            for change in rows:
                await self.outbox.room()
                if self.outbox.closed:
                    return
                self.outbox.push(self.head + change.body + "}}")
            if len(rows) == self.page:
                cursor = rows[-1].seq
                continue
            # The read saw everything committed before it began, so all up to `mark`.
            cursor = max(mark, rows[-1].seq if rows else cursor)
        for change in self.buffer:
            if change.seq > cursor:
                cursor = change.seq
                self.outbox.push(self.head + change.body + "}}")
        self.buffer = []
        self.cursor = cursor
        self.live = True

    async def recheck(self) -> None:
        """Read the caller's standing again: revoked, or send what was held and go live again."""
        assert self.gate is not None
        error = await self.gate.recheck()
        if error is not None:
            self.end(error)
            return
        await self.catch_up()

    def end(self, error: RpcError) -> None:
        """End the subscription with `error` in its last frame (revoked, or its history is gone)."""
        logger.info("records subscription %s ended: %s", self.subscription, error.message)
        self.stop()
        self.outbox.revoke(self.subscription, error)

    def stop(self) -> None:
        """Stop watching and catching up (unsubscribe, revoked, or the connection ended)."""
        self.stopped = True
        if self.task is not None:
            self.task.cancel()
        if self.watching:
            self.watching = False
            metrics.RECORD_SUBSCRIBERS.dec()
            self.hub.unwatch(self.circle_id, self.collection, self)
