"""An RPC client that also keeps the notifications it receives, for the jobs' end-to-end tests."""

import asyncio
import json
from typing import Any

from tests.helpers.rpc import RpcClient

FINAL = ("finished", "error")


class NotifiedClient(RpcClient):
    """`RpcClient` whose reads put `subscription` notifications aside (`notifications`, by subscription)."""

    def __init__(self, ws) -> None:
        super().__init__(ws)
        self.notifications: dict[str, list[dict]] = {}

    async def recv_json(self, timeout: float = 10.0) -> Any:
        """The next response (notifications met on the way are kept)."""
        while True:
            message = await self.recv_any(timeout)
            if message is not None:
                return message

    async def recv_any(self, timeout: float) -> dict | None:
        """Read one frame: a response, or None for a notification (kept)."""
        message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        if message.get("method") != "subscription":
            return message
        params = message["params"]
        # A subscription the server ends (its caller may no longer read) ends with an `error`.
        result = params["result"] if "result" in params else {"error": params["error"]}
        self.notifications.setdefault(params["subscription"], []).append(result)
        return None

    async def until(self, subscription: str, predicate, timeout: float = 20.0) -> list[dict]:
        """Read until a notification of `subscription` satisfies `predicate`; all of its notifications."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not any(predicate(n) for n in self.notifications.get(subscription, [])):
            left = deadline - loop.time()
            assert left > 0, self.notifications.get(subscription)
            try:
                message = await self.recv_any(left)
            except TimeoutError:
                continue
            if message is not None:
                self._early[message.get("id")] = message
        return self.notifications[subscription]

    async def final_of(self, subscription: str, job_id: str, timeout: float = 20.0) -> dict:
        """The final notification of job `job_id` on `subscription`."""
        found = await self.until(
            subscription, lambda n: n["job_id"] == job_id and n["status"] in FINAL, timeout
        )
        return next(n for n in found if n["job_id"] == job_id and n["status"] in FINAL)
