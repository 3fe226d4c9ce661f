"""The live-records wire contract (docs/PROTOCOL.md, "Live records") on top of the jobs fake.

A test writes with `put`/`delete` (as another member would): the record changes, the change is
logged with the circle's next seq and pushed to every matching `records` subscription.
`subscribe` with `since` sends the kept changes after it, then the live ones, in order;
`compact(oldest)` forgets the changes before `oldest`, so an older `since` gets -32006. Knobs
for the client's defences: `overlap` re-sends that many changes at or before `since` (as a
server whose history and live queue overlap would), `forbidden` refuses every records call with
-32003. `play` understands `db::list(...)` only, which is what the clients use it for here.
The real server is in tests/e2e/test_client_watch.py.
"""

import asyncio
import json
import re
import secrets
from typing import Any

from tests.client.fake_jobs import FakeJobsCircle
from tests.client.fake_server import FakeConnection, RpcFailure

LIST_CALL = re.compile(r'^db::list\("((?:[^"\\]|\\.)*)", (\d+)(?:, "((?:[^"\\]|\\.)*)")?\)$')


def unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


class FakeLiveCircle(FakeJobsCircle):
    """Jobs and live records; every caller may read (unless `forbidden`)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[tuple[str, str], dict[str, Any]] = {}  # (collection, key) -> record
        self.log: list[dict[str, Any]] = []  # every change kept, oldest first
        self.head = 0
        self.overlap = 0
        self.forbidden = False
        self._order = asyncio.Lock()  # a subscription's history and a write's push never interleave
        self._accepted: dict[str, tuple[dict[str, Any], int | None]] = {}

    @property
    def oldest(self) -> int:
        return self.log[0]["seq"] if self.log else self.head + 1

    # --- writing, as another member would ---------------------------------------------------------

    async def put(self, collection: str, key: str, data: dict[str, Any], *, by: str = "02other") -> int:
        """Write a record (its version goes up) and push the change; returns its seq."""
        old = self.records.get((collection, key))
        version = old["version"] + 1 if old else 1
        self.records[(collection, key)] = {"key": key, "data": data, "version": version, "updated_by": by}
        return await self._change(collection, key, "put", version, data, by)

    async def delete(self, collection: str, key: str, *, by: str = "02other") -> int:
        del self.records[(collection, key)]
        return await self._change(collection, key, "delete", 0, None, by)

    def compact(self, oldest: int) -> None:
        """Forget the changes with seq < `oldest`."""
        self.log = [change for change in self.log if change["seq"] >= oldest]

    async def _change(self, collection: str, key: str, op: str, version: int, data: Any, by: str) -> int:
        async with self._order:
            self.head += 1
            change = {
                "seq": self.head,
                "collection": collection,
                "key": key,
                "op": op,
                "version": version,
                "data": data,
                "updated_by": by,
                "updated_at": "2026-12-02T01:00:00.000000Z",
                "source": "ws",
            }
            self.log.append(change)
            for connection in self.connections:
                for sub_id, watch in list(connection.subscriptions.items()):
                    if watch.get("topic") == "records" and self.matches(watch, change):
                        await self.notify(connection, sub_id, change)
            return self.head

    async def revoke_all(self) -> None:
        """End every records subscription as the server does when its caller may no longer read."""
        error = {"code": -32003, "message": "Forbidden", "data": {"role": "guest", "needs": "member"}}
        for connection in self.connections:
            for sub_id, watch in list(connection.subscriptions.items()):
                if watch.get("topic") == "records":
                    del connection.subscriptions[sub_id]
                    message = {"subscription": sub_id, "error": error}
                    frame = {"jsonrpc": "2.0", "method": "subscription", "params": message}
                    await connection.ws.send(json.dumps(frame))

    @staticmethod
    def matches(watch: dict[str, Any], change: dict[str, Any]) -> bool:
        return change["collection"] == watch["collection"] and change["key"].startswith(watch["prefix"])

    # --- answering -----------------------------------------------------------------------------------

    async def answer(self, connection: FakeConnection, method: str, params: Any) -> Any:
        if method == "records_head":
            self._may_read(connection)
            return {"seq": self.head, "oldest": self.oldest}
        if method == "subscribe" and params.get("topic") == "records":
            return await self._subscribe_records(connection, params)
        if method == "play":
            self._may_read(connection)
            return self._play(params["script"])
        return await super().answer(connection, method, params)

    def _may_read(self, connection: FakeConnection) -> None:
        if connection.caller is None:
            raise RpcFailure(-32001, "Authentication required")
        if self.forbidden:
            raise RpcFailure(-32003, "Forbidden", {"role": "guest", "needs": "member"})

    async def _subscribe_records(self, connection: FakeConnection, params: dict[str, Any]) -> str:
        self._may_read(connection)
        if not isinstance(params.get("collection"), str):
            raise RpcFailure(-32602, "Invalid params", {"field": "collection", "reason": "required"})
        since = params.get("since")
        if since is not None and since > self.head:
            reason = f"greater than the latest change {self.head}"
            raise RpcFailure(-32602, "Invalid params", {"field": "since", "reason": reason})
        if since is not None and since < self.oldest - 1:
            raise RpcFailure(-32006, "Changes compacted", {"oldest": self.oldest, "head": self.head})
        watch = {"topic": "records", "collection": params["collection"], "prefix": params.get("prefix", "")}
        sub_id = "0x" + secrets.token_hex(16)
        self._accepted[sub_id] = (watch, since)  # live once the answer is out (`answered`)
        return sub_id

    async def answered(self, connection: FakeConnection, method: str, params: Any, result: Any) -> None:
        accepted = self._accepted.pop(result, None) if method == "subscribe" else None
        if accepted is None:
            await super().answered(connection, method, params, result)
            return
        watch, since = accepted
        async with self._order:  # the history, then the live changes: none missed, none twice
            connection.subscriptions[result] = watch
            if since is not None:
                start = max(0, since - self.overlap)
                for change in list(self.log):
                    if change["seq"] > start and self.matches(watch, change):
                        await self.notify(connection, result, change)

    def _play(self, script: str) -> dict[str, Any]:
        found = LIST_CALL.match(script.strip())
        if found is None:
            raise RpcFailure(
                -32000, "Execution error", {"kind": "host", "message": "the fake runs db::list only"}
            )
        collection, limit, prefix = unquote(found[1]), int(found[2]), unquote(found[3] or "")
        rows = sorted(
            (
                dict(record)
                for (c, key), record in self.records.items()
                if c == collection and key.startswith(prefix)
            ),
            key=lambda record: record["key"],
        )[:limit]
        return {"output": "", "value": rows, "logs": [], "run_id": "fake", "elapsed_ms": 0.1}
