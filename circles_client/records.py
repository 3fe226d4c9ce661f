"""Live records: `client.watch(collection)`, an async iterator of the circle's committed changes.

A watch is a `records` subscription (docs/PROTOCOL.md, "Live records") that always asks with
`since`: the first time with the caller's `since`, or else with the circle's head read just
before (`records_head`), so the changes from that moment on are all delivered; after every
reconnect the client's after-sign-in replay subscribes again with `since` set to the last seq
the watch delivered, and the server sends what was missed, then the live ones. A change the
server sends twice (the history and the queue overlapping around a reconnect) is dropped here by
its `seq`, so the caller sees every change once, in order. A close 4408 (the connection left too
many notifications unread) is one more reconnect.

When the server no longer keeps the changes after `since` (a long outage, an old `since`) the
watch raises `ChangesCompacted` (-32006, `.oldest`, `.head`): re-read with `list_records` and
watch again with `since=error.head`.
"""

import asyncio
import logging
from typing import Any, Protocol

from circles_client.circle_scripts import rhai_string
from circles_client.subscriptions import CatchUp, Subscription

logger = logging.getLogger("circles_client")

TOPIC = "records"
LIST_DEFAULT = 100  # db::list's own default


class Calls(Protocol):
    """What a `RecordWatch` needs of its client (`CircleClient` is one)."""

    async def call(self, method: str, params: Any = None, *, timeout: float | None = None) -> Any: ...

    async def subscribe(
        self, topic: str, *, catch_up: CatchUp | None = None, **params: Any
    ) -> Subscription: ...


def list_script(collection: str, limit: int = LIST_DEFAULT, prefix: str | None = None) -> str:
    """`db::list(collection, limit[, prefix])` with its arguments quoted for Rhai."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer (got {limit!r})")
    arguments = [rhai_string(collection), str(limit)] + ([rhai_string(prefix)] if prefix is not None else [])
    return f"db::list({', '.join(arguments)})"


class RecordWatch:
    """The changes of one collection (keys starting with `prefix`, if given) after `since`.

    `async for change in watch` yields change objects (`seq`, `collection`, `key`, `op`,
    `version`, `data`, `updated_by`, `updated_at`, `source`) in `seq` order, each once. The
    subscription opens on the first iteration or on `await watch.start()` (which returns once
    the server has accepted it: a write made after that is delivered). `last_seq` is the seq of
    the latest change delivered (before the first: the `since` it starts after). End it with
    `close()`, or use it as `async with client.watch(...) as changes:`.

    Raises the server's refusal (`Forbidden`, `AuthenticationRequired`, `InvalidParams`,
    `ChangesCompacted`), also from a re-subscription after a reconnect, and `ConnectionLost`
    when the client is closed or the circle is gone.
    """

    def __init__(
        self, client: Calls, collection: str, prefix: str | None = None, since: int | None = None
    ) -> None:
        if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
            raise ValueError(f"since must be an integer >= 0 (got {since!r})")
        self.client = client
        self.collection = collection
        self.prefix = prefix
        self.last_seq: int | None = since
        self.subscription: Subscription | None = None
        self.duplicates = 0  # changes the server sent again (seq <= last_seq), dropped

    def __repr__(self) -> str:
        return f"RecordWatch({self.collection!r}, prefix={self.prefix!r}, last_seq={self.last_seq})"

    async def start(self) -> "RecordWatch":
        """Subscribe (once): reads `records_head` first when no `since` was given."""
        if self.subscription is None:
            if self.last_seq is None:
                self.last_seq = int((await self.client.call("records_head"))["seq"])
            params: dict[str, Any] = {"collection": self.collection, "since": self.last_seq}
            if self.prefix is not None:
                params["prefix"] = self.prefix
            self.subscription = await self.client.subscribe(TOPIC, **params)
        return self

    def __aiter__(self) -> "RecordWatch":
        return self

    async def __anext__(self) -> dict[str, Any]:
        subscription = (await self.start()).subscription
        assert subscription is not None and self.last_seq is not None
        while True:
            change = await subscription.__anext__()
            seq = change.get("seq") if isinstance(change, dict) else None
            if not isinstance(seq, int):
                logger.warning("ignoring a records notification without a seq: %r", change)
                continue
            if seq <= self.last_seq:
                self.duplicates += 1
                continue
            self.last_seq = seq
            # What the next re-subscription asks for: only what comes after this one.
            subscription.params["since"] = seq
            return change

    async def next(self, timeout: float | None = None) -> dict[str, Any]:
        """The next change; `StopAsyncIteration` once closed, `TimeoutError` after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    async def close(self) -> None:
        """Unsubscribe; iteration ends once what was already received has been read."""
        if self.subscription is not None:
            await self.subscription.close()

    async def __aenter__(self) -> "RecordWatch":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class RecordMethods:
    """The live-records calls of a client; the class using it provides `call` and `subscribe`."""

    def watch(
        self: Calls, collection: str, prefix: str | None = None, since: int | None = None
    ) -> RecordWatch:
        """The changes of `collection` (keys starting with `prefix`) after `since`, as `RecordWatch`.

        Without `since`: from now on (the circle's head is read first, so nothing between that
        and a reconnect is missed). With `since`: every kept change after that seq first.
        """
        return RecordWatch(self, collection, prefix, since)

    async def records_head(self: Calls) -> dict[str, int]:
        """`records_head`: `{"seq": the circle's latest change (0: none), "oldest": the oldest kept}`."""
        return await self.call("records_head")

    async def list_records(
        self: Calls, collection: str, limit: int = LIST_DEFAULT, prefix: str | None = None
    ) -> list[dict[str, Any]]:
        """`db::list` run with `play`: `[{key, data, version, updated_by}, ...]`, keys in order."""
        result = await self.call("play", {"script": list_script(collection, limit, prefix)})
        return result["value"]
