"""Subscriptions: what the server pushes (`{"method": "subscription"}` frames), routed by id, kept
across reconnects.

`subscribe(topic, **params)` sends `subscribe` and returns a `Subscription`, an async iterator
of the `result` of every notification carrying its id. The id is bound the moment the answer
arrives (in the connection's reader, before the next frame), so no notification is missed.

A subscription lives as long as its connection on the server's side. So each one registers an
after-sign-in step (`circles_client.after_sign_in`): after a reconnect it subscribes again, the
server answers with a NEW id, and that id is mapped to the same `Subscription`. What changed
while no connection was open is not pushed again: a subscription may carry a `catch_up` step,
run after every (re)subscription on the same connection, whose result is queued like a
notification (for a job: its status read again, so one that finished meanwhile is not missed).
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from circles_client.after_sign_in import AfterSignIn
from circles_client.connection import Connection
from circles_client.errors import CirclesError, ConnectionLost, RpcError

logger = logging.getLogger("circles_client")

NOTIFICATION_METHOD = "subscription"

# Run on the connection just subscribed on; a non-None result is queued like a notification's.
CatchUp = Callable[[Connection], Awaitable[Any]]


class _End:
    """The queue's last entry: iteration stops (or raises `error`)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class Subscription:
    """One subscription: `async for result in subscription`, or `await subscription.next()`.

    `id` is the server's id on the current connection (it changes after a reconnect); `params`
    are sent again with every re-subscription (a records watch moves its `since` there). Iteration
    ends after `close()` / `unsubscribe`; it raises the reason when the subscription cannot go
    on (the client closed, the circle is gone, the server refused to subscribe again).
    """

    def __init__(
        self, registry: "Subscriptions", topic: str, params: dict[str, Any], catch_up: CatchUp | None
    ) -> None:
        self.topic = topic
        self.params = params
        self.id: str | None = None
        self.subscribed = 0  # how many times the server accepted it (1 + the reconnects)
        self.catch_up = catch_up
        self._registry = registry
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._ended: _End | None = None

    def __repr__(self) -> str:
        return f"Subscription({self.topic!r}, {self.params!r}, id={self.id!r})"

    @property
    def active(self) -> bool:
        return self._ended is None

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Any:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # every later read ends too
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    async def next(self, timeout: float | None = None) -> Any:
        """The next result; `StopAsyncIteration` once ended, `TimeoutError` after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    def pending(self) -> int:
        """How many results are queued and not read yet."""
        return self._queue.qsize()

    async def close(self) -> bool:
        """Unsubscribe (see `Subscriptions.unsubscribe`)."""
        return await self._registry.unsubscribe(self)

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def push(self, result: Any) -> None:
        if self._ended is None:
            self._queue.put_nowait(result)

    def end(self, error: BaseException | None = None) -> None:
        if self._ended is None:
            self._ended = _End(error)
            self._queue.put_nowait(self._ended)


class Subscriptions:
    """The client's subscriptions by the server's id; `deliver` is the connections' notification handler.

    `current` gives the connection to unsubscribe on (None when there is none open).
    """

    def __init__(self, after_sign_in: AfterSignIn, current: Callable[[], Connection | None]) -> None:
        self._after_sign_in = after_sign_in
        self._current = current
        self._by_id: dict[str, Subscription] = {}
        self._all: list[Subscription] = []  # in the order they were made

    def __len__(self) -> int:
        return len(self._all)

    def deliver(self, method: str, params: Any) -> None:
        """Route one pushed frame to its subscription (unknown ids: late, after an unsubscribe)."""
        if method != NOTIFICATION_METHOD or not isinstance(params, dict):
            logger.debug("ignoring a %r notification", method)
            return
        subscription = self._by_id.get(params.get("subscription"))
        if subscription is None:
            logger.debug("ignoring a notification of an unknown subscription %r", params.get("subscription"))
            return
        error = params.get("error")
        if isinstance(error, dict):  # the server ended it (its caller may no longer read)
            self._forget(subscription)
            subscription.id = None
            subscription.end(RpcError.from_response(error))
            return
        subscription.push(params.get("result"))

    async def subscribe(
        self, connection: Connection, topic: str, params: dict[str, Any], catch_up: CatchUp | None = None
    ) -> Subscription:
        """Subscribe on `connection`, and on every later one; raises the server's refusal."""
        subscription = Subscription(self, topic, params, catch_up)
        try:
            await self._subscribe_on(connection, subscription)
        except CirclesError:  # refused, or its catch-up failed: give the server's side up too
            with contextlib.suppress(CirclesError):
                await self.unsubscribe(subscription)
            raise
        self._all.append(subscription)
        self._after_sign_in.add(_step_name(subscription), lambda new: self._resubscribe(new, subscription))
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> bool:
        """Stop it here and on the server; True when the server still knew it.

        Its iteration ends once what was queued before has been read.
        """
        self._forget(subscription)
        server_id, subscription.id = subscription.id, None
        subscription.end()
        connection = self._current()
        if server_id is None or connection is None or connection.closed:
            return False  # the server's side died with its connection
        try:
            return bool(await connection.request("unsubscribe", {"subscription": server_id}))
        except ConnectionLost:
            return False

    def end_all(self, error: BaseException) -> None:
        """Every subscription ends with `error` (no connection will carry them any more)."""
        for subscription in list(self._all):
            self._forget(subscription)
            subscription.end(error)

    # --- internals --------------------------------------------------------------------------------

    async def _subscribe_on(self, connection: Connection, subscription: Subscription) -> None:
        await connection.request(
            "subscribe",
            {"topic": subscription.topic, **subscription.params},
            on_result=lambda server_id: self._bind(subscription, server_id),
        )
        if subscription.catch_up is not None:
            caught_up = await subscription.catch_up(connection)
            if caught_up is not None:
                subscription.push(caught_up)

    async def _resubscribe(self, connection: Connection, subscription: Subscription) -> None:
        """The after-sign-in step: subscribe again; a refusal ends the subscription with it."""
        if not subscription.active:
            return
        try:
            await self._subscribe_on(connection, subscription)
        except RpcError as exc:
            logger.warning("could not subscribe again to %r: %s", subscription, exc)
            self._forget(subscription)
            subscription.end(exc)

    def _bind(self, subscription: Subscription, server_id: Any) -> None:
        if subscription.id is not None:
            self._by_id.pop(subscription.id, None)  # the old connection's id
        subscription.subscribed += 1
        if not isinstance(server_id, str) or not subscription.active:
            subscription.id = None
            return
        subscription.id = server_id
        self._by_id[server_id] = subscription

    def _forget(self, subscription: Subscription) -> None:
        if subscription in self._all:
            self._all.remove(subscription)
        self._after_sign_in.discard(_step_name(subscription))
        if subscription.id is not None:
            self._by_id.pop(subscription.id, None)


def _step_name(subscription: Subscription) -> tuple[str, int]:
    return ("subscription", id(subscription))
