"""A small JSON-RPC 2.0 client over a real WebSocket, for the end-to-end tests."""

import itertools
import json
from typing import Any

import websockets

from tests.helpers.keys import WalletKey


class RpcClient:
    """One WebSocket connection; `call` sends a request and waits for the response with its id."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._early: dict[Any, dict] = {}

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> "RpcClient":
        return cls(await websockets.connect(url, **kwargs))

    async def close(self) -> None:
        await self.ws.close()

    async def __aenter__(self) -> "RpcClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send_json(self, message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def recv_json(self, timeout: float = 10.0) -> Any:
        import asyncio

        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def request(self, method: str, params: Any = None, *, timeout: float = 10.0) -> dict:
        """Send one request and return its whole response object (responses to others are kept)."""
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            message["params"] = params
        await self.send_json(message)
        return await self.response_to(request_id, timeout=timeout)

    async def response_to(self, request_id: Any, *, timeout: float = 10.0) -> dict:
        while request_id not in self._early:
            response = await self.recv_json(timeout)
            self._early[response.get("id")] = response
        return self._early.pop(request_id)

    async def call(self, method: str, params: Any = None, **kwargs: Any) -> Any:
        """The `result` of a request; raises AssertionError carrying the error object otherwise."""
        response = await self.request(method, params, **kwargs)
        assert "result" in response, response
        return response["result"]

    async def sign_in(self, key: WalletKey, *, pubkey: str | None = None) -> None:
        """fetch_nonce + authenticate with `key`, as a client would."""
        subject = pubkey or key.pubkey
        nonce = await self.call("fetch_nonce", {"pubkey": subject})
        assert await self.call("authenticate", {"pubkey": subject, "signature": key.sign(nonce)}) is True
