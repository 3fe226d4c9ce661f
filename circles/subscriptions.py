"""Subscriptions of one connection: topics by name, notifications through one bounded outbox.

A topic (`Topic`, registered with `register_topic`) is one of two kinds:

* a **group topic** ("jobs", `circles.job_methods`) says which channel-layer group carries its
  events for a session's circle and how a `subscribe` call's params become a `Notice` filter
  with a route. The process's event hub (`circles.event_hub`) is in the group and hands each
  event with that route to `Subscriptions.deliver`, which turns it into one notification
  per matching subscription;
* a **stream topic** ("records", `circles.record_methods`) opens a `Stream` per subscription that
  feeds the outbox itself (`circles.record_stream`: history, then the process's change hub).
  A stream is started only once the subscribe answer has been sent (`answered`), so its first
  notification never overtakes the answer that names it.

Either way a notification has the Ethereum `eth_subscribe` shape:

    {"jsonrpc": "2.0", "method": "subscription", "params": {"subscription": id, "result": ...}}

Per subscription and key (a job id), a notice older than one already sent (its `revision`)
is dropped, so a client never sees a key go backwards. A notification for a connection with
nothing waiting is sent at once, on the caller's stack (`circles.eager`: no task, no wake-up of
the loop; one change fanned out to 1,000 connections is 1,000 such sends). Only when a send
has to wait (the client is not reading, the socket's buffer is full) do later notifications
wait in the connection's outbox, bounded by CIRCLES_MAX_UNREAD_NOTIFICATIONS and drained by
a task in order: a client that does not read stops the drain, the outbox fills, and the
connection is closed with 4408, so no reader can grow the server's memory. Streams that send
much at once (a history) wait for `room` between frames instead of tripping the bound.
"""

import asyncio
import contextlib
import logging
import secrets
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from circles import eager, metrics
from circles.jsonrpc import INVALID_PARAMS, RATE_LIMITED, RpcError, encode

logger = logging.getLogger("circles.subscriptions")

CLOSE_TOO_MANY_UNREAD = 4408
TOO_MANY_UNREAD_REASON = "too many unread notifications"
NOTIFICATION_METHOD = "subscription"
REVISIONS_KEPT = 4096  # keys whose last revision a connection remembers (oldest forgotten first)


@dataclass(frozen=True, slots=True)
class Notice:
    """What one event means to one subscription: its key, revision and the notification's result."""

    key: str
    revision: int
    result: dict[str, Any]


Filter = Callable[[dict[str, Any]], Notice | None]  # an event -> its notice, or None: not for us


class GatedFilter(Protocol):
    """A filter whose caller's standing may change (a jobs subscription): while it is not
    `trusted`, its events wait for `recheck`, which ends the subscription with its refusal."""

    def __call__(self, event: dict[str, Any]) -> Notice | None: ...

    def trusted(self) -> bool:
        """Whether the standing read last still holds."""

    async def recheck(self) -> RpcError | None:
        """Read the standing again: None when the caller may still watch, else the refusal."""


class Stream(Protocol):
    """A subscription that feeds the outbox itself (a stream topic's)."""

    def start(self, subscription: str) -> None:
        """Its subscribe answer went out: begin sending, as `subscription`."""

    def stop(self) -> None:
        """Unsubscribed, or the connection ended: stop for good."""


class EventSource(Protocol):
    """Where a group topic's events come from (the process's `circles.event_hub.EventHub`)."""

    async def watch(self, group: str, route: str, receiver: Callable[[str, dict[str, Any]], None]) -> None:
        """Hand `receiver` the events of `group` that have `route`, from when this returns."""

    def unwatch(self, group: str, route: str, receiver: Callable[[str, dict[str, Any]], None]) -> None:
        """Stop handing `receiver` those events."""


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic clients subscribe to by name.

    `group(session)`: the channel-layer group of the session's circle, or None for a stream
    topic; `open(session, params)`: check the `subscribe` params (raise RpcError) and return the
    subscription's filter (a group topic: with the `route` of the events it wants, see
    `circles.event_hub`) or its `Stream`. `params`: the params it takes besides
    `topic` (others are -32602).
    """

    name: str
    group: Callable[[Any], str] | None
    open: Callable[[Any, dict[str, Any]], Awaitable[Any]]
    params: frozenset[str] = frozenset()


TOPICS: dict[str, Topic] = {}


def register_topic(topic: Topic) -> None:
    """Make `topic` subscribable by its name; names are unique."""
    if topic.name in TOPICS:
        raise ValueError(f"topic {topic.name!r} registered twice")
    TOPICS[topic.name] = topic


def subscription_id() -> str:
    """A new subscription id: "0x" and 32 hex digits."""
    return "0x" + secrets.token_hex(16)


def notification(subscription: str, result: dict[str, Any]) -> dict[str, Any]:
    """The notification frame of one result."""
    return {
        "jsonrpc": "2.0",
        "method": NOTIFICATION_METHOD,
        "params": {"subscription": subscription, "result": result},
    }


def too_many_subscriptions() -> RpcError:
    """The -32029 of a subscribe over the per-connection bound."""
    return RpcError(RATE_LIMITED, data={"reason": "too many subscriptions"})


Listener = Callable[[dict[str, Any]], None]  # an in-process watcher of a topic's events (run_job)


class Subscriptions:
    """One connection's subscriptions and listeners, and its bounded outbox."""

    def __init__(
        self,
        *,
        max_subscriptions: int,
        max_unread: int,
        send: Callable[[str], Coroutine[Any, Any, None]],
        events: Callable[[], EventSource],
        overflow: Callable[[], None],
    ) -> None:
        self.max_subscriptions = max_subscriptions
        self.send = send
        self.events = events
        self.overflow = overflow
        self.filters: dict[str, tuple[str, Filter]] = {}  # subscription id -> (topic, filter)
        self.streams: dict[str, Stream] = {}  # subscription id -> its stream
        self.held: set[str] = set()  # streams whose subscribe answer has not been sent yet
        self.listeners: dict[str, set[Listener]] = {}
        self.watches: dict[Any, tuple[str, str]] = {}  # subscription id or listener -> (group, route)
        self.revisions: OrderedDict[tuple[str, str], int] = OrderedDict()
        self.rechecking: dict[str, list[dict[str, Any]]] = {}  # gated subscription -> events held
        self.rechecks: set[asyncio.Task[None]] = set()  # their re-reads in progress (kept referenced)
        self.max_unread = max(1, max_unread)
        self.outbox: deque[str] = deque()  # frames waiting for a send in progress (at most max_unread)
        self.drainer: asyncio.Task | None = None  # the task sending now (finishing a send, then the outbox)
        self.roomy = asyncio.Event()
        self.closed = False

    def count(self) -> int:
        """How many subscriptions are open."""
        return len(self.filters) + len(self.streams)

    async def watch(self, handle: Any, topic: Topic, session: Any, route: str) -> None:
        """Have the process's event hub hand this connection the events of `route` in `topic`'s
        group of the session's circle (a group topic's), until `unwatch(handle)`."""
        if topic.group is None:
            return
        group = topic.group(session)
        await self.events().watch(group, route, self.deliver)
        self.watches[handle] = (group, route)

    def unwatch(self, handle: Any) -> None:
        """Stop the watch `handle` started (none: nothing to do)."""
        watch = self.watches.pop(handle, None)
        if watch is not None:
            self.events().unwatch(watch[0], watch[1], self.deliver)

    async def subscribe(self, name: str, session: Any, params: dict[str, Any]) -> str:
        """Open a subscription to topic `name` (RpcError for an unknown topic, bad params, over the bound)."""
        topic = TOPICS.get(name)
        if topic is None:
            raise RpcError(
                INVALID_PARAMS, data={"field": "topic", "reason": f"unknown topic; one of {sorted(TOPICS)}"}
            )
        unknown = sorted(set(params) - topic.params)
        if unknown:
            reason = f"is not a parameter of topic {name}"
            raise RpcError(INVALID_PARAMS, data={"field": unknown[0], "reason": reason})
        if self.count() >= self.max_subscriptions:
            raise too_many_subscriptions()
        opened = await topic.open(session, params)
        if topic.group is None:
            if self.count() >= self.max_subscriptions or self.closed:  # another subscribe won meanwhile
                opened.stop()
                raise too_many_subscriptions()
            sub = subscription_id()
            self.streams[sub] = opened
            self.held.add(sub)
            return sub
        if self.count() >= self.max_subscriptions or self.closed:  # another subscribe won meanwhile
            raise too_many_subscriptions()
        sub = subscription_id()
        self.filters[sub] = (name, opened)
        try:
            await self.watch(sub, topic, session, opened.route)
        except BaseException:
            self.filters.pop(sub, None)
            raise
        if self.closed:  # the connection ended while the hub joined the group
            self.unwatch(sub)
        return sub

    def answered(self, message: dict[str, Any] | list[dict[str, Any]]) -> None:
        """A response frame went out: start the streams it named (their subscribe answers)."""
        if not self.held:
            return
        for response in message if isinstance(message, list) else (message,):
            self.release(response.get("result"))

    def release(self, sub: Any) -> None:
        """Start held stream `sub` (its answer is out, or none will be sent)."""
        if isinstance(sub, str) and sub in self.held:
            self.held.discard(sub)
            self.streams[sub].start(sub)

    def unsubscribe(self, sub: str) -> bool:
        """Close subscription `sub`; False when there is no such subscription."""
        stream = self.streams.pop(sub, None)
        if stream is not None:
            self.held.discard(sub)
            stream.stop()
            return True
        if self.filters.pop(sub, None) is None:
            return False
        self.unwatch(sub)
        for key in [key for key in self.revisions if key[0] == sub]:
            del self.revisions[key]
        return True

    def revoke(self, sub: str, error: RpcError) -> None:
        """End subscription `sub` because its caller may no longer read: one last frame carries
        `error` where a notification carries `result`, then nothing more comes for `sub`."""
        if self.streams.pop(sub, None) is None and self.filters.pop(sub, None) is None:
            return
        self.unwatch(sub)
        self.held.discard(sub)
        self.rechecking.pop(sub, None)
        for key in [key for key in self.revisions if key[0] == sub]:
            del self.revisions[key]
        frame = {
            "jsonrpc": "2.0",
            "method": NOTIFICATION_METHOD,
            "params": {"subscription": sub, "error": error.to_dict()},
        }
        self.push(encode(frame))

    async def listen(self, name: str, session: Any, listener: Listener, route: str) -> Callable[[], None]:
        """Call `listener` with each event of topic `name` that has `route` (and any other event
        this connection is handed) until the returned function is called."""
        self.listeners.setdefault(name, set()).add(listener)
        try:
            await self.watch(listener, TOPICS[name], session, route)
        except BaseException:
            self.listeners[name].discard(listener)
            raise
        if self.closed:  # the connection ended while the hub joined the group
            self.unwatch(listener)

        def stop() -> None:
            self.listeners.get(name, set()).discard(listener)
            self.unwatch(listener)

        return stop

    def deliver(self, name: str, event: dict[str, Any]) -> None:
        """One event of topic `name`: to the listeners, and a notification per matching subscription."""
        for listener in list(self.listeners.get(name, ())):
            listener(event)
        for sub, (topic, matcher) in list(self.filters.items()):
            if topic != name:
                continue
            held = self.rechecking.get(sub)
            if held is not None:
                held.append(event)
                continue
            trusted = getattr(matcher, "trusted", None)
            if trusted is not None and not trusted():
                self.rechecking[sub] = [event]
                task = asyncio.get_running_loop().create_task(self.recheck(sub, matcher))  # type: ignore[arg-type]
                self.rechecks.add(task)
                task.add_done_callback(self.rechecks.discard)
                continue
            self.notify(sub, matcher, event)

    def notify(self, sub: str, matcher: Filter, event: dict[str, Any]) -> None:
        """Push `event`'s notification for `sub`, if it matches and is newer than what `sub` got."""
        notice = matcher(event)
        if notice is None or not self.in_order(sub, notice):
            return
        self.push(encode(notification(sub, notice.result)))

    async def recheck(self, sub: str, matcher: GatedFilter) -> None:
        """Read `sub`'s caller's standing again: revoke it, or send the events held meanwhile."""
        try:
            error = await matcher.recheck()
        except Exception:
            logger.exception("could not re-read the standing of subscription %s", sub)
            error = None  # the next event tries again (the gate is still not trusted)
        held = self.rechecking.pop(sub, [])
        if self.filters.get(sub, (None, None))[1] is not matcher:
            return  # unsubscribed meanwhile
        if error is not None:
            logger.info("subscription %s revoked: %s", sub, error.message)
            self.revoke(sub, error)
            return
        for event in held:
            self.notify(sub, matcher, event)

    def in_order(self, sub: str, notice: Notice) -> bool:
        """Whether `notice` is newer than what `sub` already got for its key (and remember it)."""
        key = (sub, notice.key)
        last = self.revisions.get(key)
        if last is not None and notice.revision <= last:
            return False
        self.revisions[key] = notice.revision
        self.revisions.move_to_end(key)
        while len(self.revisions) > REVISIONS_KEPT:
            self.revisions.popitem(last=False)
        return True

    def push(self, frame: str) -> None:
        """Send one frame now, or queue it behind a send in progress; past the bound, close (4408)."""
        if self.closed:
            return
        if self.drainer is None:  # nothing in progress, so nothing queued: this one goes now
            try:
                self.drainer = eager.start(self.send(frame))
            except Exception as exc:
                self.failed(exc)
                return
            if self.drainer is not None:  # the send waits for the socket: the rest follows it
                self.drainer.add_done_callback(self.drained)
            return
        if len(self.outbox) >= self.max_unread:
            self.closed = True
            self.roomy.set()
            for stream in self.streams.values():  # nothing more will be sent: let the hub go now
                stream.stop()
            logger.info("closing: %s notifications unread", self.max_unread)
            metrics.SLOW_READER_CLOSES.inc()
            self.overflow()
            return
        self.outbox.append(frame)

    def drained(self, task: "asyncio.Task[None]") -> None:
        """A send that had to wait is done: send what queued behind it (in a task), or be idle."""
        if task is not self.drainer:
            return
        self.drainer = None
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self.failed(error)
        elif self.outbox and not self.closed:
            self.drainer = asyncio.ensure_future(self.drain())
            self.drainer.add_done_callback(self.drained)

    def failed(self, error: BaseException) -> None:
        """A send failed (the connection is going): nothing more is sent on it."""
        logger.debug("notification send failed: %r", error)
        self.closed = True
        self.roomy.set()
        self.outbox.clear()
        for stream in self.streams.values():
            stream.stop()

    async def room(self) -> None:
        """Wait until the outbox is at most half full (a stream sending much at once)."""
        while len(self.outbox) > self.max_unread // 2 and not self.closed:
            self.roomy.clear()
            await self.roomy.wait()

    async def drain(self) -> None:
        """Send the queued notifications in order until none is left."""
        while self.outbox and not self.closed:
            frame = self.outbox.popleft()
            if len(self.outbox) <= self.max_unread // 2:
                self.roomy.set()
            await self.send(frame)

    async def close(self) -> None:
        """The connection ended: stop the drain and the streams, drop everything."""
        self.closed = True
        self.roomy.set()
        for stream in self.streams.values():
            stream.stop()
        self.streams.clear()
        self.held.clear()
        self.filters.clear()
        self.listeners.clear()
        for handle in list(self.watches):
            self.unwatch(handle)
        self.rechecking.clear()
        for task in list(self.rechecks):
            task.cancel()
        if self.drainer is not None:
            self.drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.drainer
