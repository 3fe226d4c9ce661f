"""This process's share of a group topic's events (the jobs'): one channel, routed to those who watch.

A group topic's events are published once per change to a channel-layer group per circle
(`executor.job_events`). Were every connection with a subscription in the group, each event would
be queued, decoded and filtered once per connection of the circle in every process, though it
concerns one member's connections (a job's events are its caller's, or its watchers'). Instead
each ASGI process holds one channel of its own (`EventHub`), in the group of every circle some
connection of the process watches, and hands each event only to the watchers of its *routes*:
the publisher names the routes of an event in its message (a job's: its id, its caller, and
"every job of the circle"), a watcher the one route it follows. A watcher is a callback, called
on the loop with the topic's name and the event, at most once per event however many of its
routes the event has; it filters further itself (`circles.subscriptions.Subscriptions.deliver`).

The group is joined before the first `watch` of a circle returns, so every event published after
a subscribe's answer reaches it, and left once its last watcher is gone. The in-memory layer
forgets a group member after its `group_expiry` (a day): joined groups are joined again every
`REJOIN_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer

logger = logging.getLogger("circles.event_hub")

Route = str  # e.g. "job:<id>", "caller:<key>", "all" (executor.job_events names a job event's)
Receiver = Callable[[str, dict[str, Any]], None]  # (topic, event), on the loop
RETRY_SECONDS = 1.0  # after a failed receive, before the next
REJOIN_SECONDS = 3600.0  # well inside the in-memory layer's group_expiry (86,400 s)


class EventHub:
    """The process's channel for group topics' events and who watches which route of which group."""

    def __init__(self, layer: BaseChannelLayer) -> None:
        self.layer = layer
        self.loop = asyncio.get_running_loop()
        self.watchers: dict[str, dict[Route, set[Receiver]]] = {}  # group -> route -> receivers
        self.joined: set[str] = set()
        self.locks: dict[str, asyncio.Lock] = {}
        self.channel: str | None = None
        self.delivered = 0  # events handed to a receiver (for tests and metrics)
        self._opened: asyncio.Future[str] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def watch(self, group: str, route: Route, receiver: Receiver) -> None:
        """Hand `receiver` the events of `group` that have `route`, from when this returns."""
        self.watchers.setdefault(group, {}).setdefault(route, set()).add(receiver)
        if group in self.joined and not self._busy(group):
            return
        try:
            await self._settle(group)
        except BaseException:
            self.unwatch(group, route, receiver)
            raise

    def unwatch(self, group: str, route: Route, receiver: Receiver) -> None:
        """Stop handing `receiver` the events of `route` (the group is left after its last watcher)."""
        routes = self.watchers.get(group)
        if routes is None:
            return
        receivers = routes.get(route)
        if receivers is not None:
            receivers.discard(receiver)
            if not receivers:
                del routes[route]
        if not routes:
            del self.watchers[group]
            self._spawn(self._settle(group))

    def heard(self, message: dict[str, Any]) -> None:
        """One message from the channel: to the receivers of its routes (each once)."""
        routes = self.watchers.get(message.get("group", ""))
        if not routes:
            return
        topic, event, event_routes = message["topic"], message["event"], message.get("routes", ())
        receivers: set[Receiver] = set()
        for route in event_routes:
            found = routes.get(route)
            if found:
                receivers.update(found)
        for receiver in receivers:
            try:
                receiver(topic, event)
            except Exception:
                logger.exception("a %s event receiver failed", topic)
        self.delivered += len(receivers)

    def _busy(self, group: str) -> bool:
        lock = self.locks.get(group)
        return lock is not None and lock.locked()

    async def _settle(self, group: str) -> None:
        """Be in `group` exactly while someone watches it (one join or leave at a time per group)."""
        lock = self.locks.setdefault(group, asyncio.Lock())
        async with lock:
            wanted = bool(self.watchers.get(group))
            if wanted and group not in self.joined:
                await self.layer.group_add(group, await self._channel())
                self.joined.add(group)
            elif not wanted and group in self.joined:
                self.joined.discard(group)
                await self.layer.group_discard(group, await self._channel())
        if not lock.locked() and not self.watchers.get(group) and group not in self.joined:
            self.locks.pop(group, None)

    async def _channel(self) -> str:
        """The hub's channel (made, with its receiving task, on first use)."""
        if self._opened is None:
            self._opened = self.loop.create_future()
            try:
                channel = await self.layer.new_channel()
            except BaseException as exc:
                self._opened.set_exception(exc)
                self._opened.exception()  # retrieved: the next caller tries again
                self._opened = None
                raise
            self.channel = channel
            self._opened.set_result(channel)
            self._spawn(self._receiving(channel))
            self._spawn(self._rejoining(channel))
        return await asyncio.shield(self._opened)

    async def _receiving(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the layer reconnects by itself; the next receive waits for it
                logger.warning("could not receive group events: %s", exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            self.heard(message)

    async def _rejoining(self, channel: str) -> None:
        while True:
            await asyncio.sleep(REJOIN_SECONDS)
            for group in list(self.joined):
                try:
                    await self.layer.group_add(group, channel)
                except Exception as exc:
                    logger.warning("could not join group %s again: %s", group, exc)

    def _spawn(self, coroutine: Any) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        """Stop receiving (the loop ends)."""
        for task in list(self._tasks):
            task.cancel()


_lock = threading.Lock()
_current: EventHub | None = None


def process_event_hub() -> EventHub:
    """The event hub of the running loop (made on first use)."""
    global _current
    loop = asyncio.get_running_loop()
    with _lock:
        if _current is not None and _current.loop is loop:
            return _current
        if _current is not None:  # a previous loop's (tests): let it go
            with contextlib.suppress(RuntimeError):
                _current.stop()
        layer = get_channel_layer()
        if layer is None:
            raise RuntimeError("no channel layer is configured")
        _current = EventHub(layer)
        return _current
