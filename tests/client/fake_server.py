"""The in-process WebSocket server the client tests talk to: JSON-RPC framing, sign-in, restarts.

`FakeServer` answers `fetch_nonce`, `authenticate` (anyone: the pubkey becomes the caller) and
`whoami`; subclasses answer the rest by overriding `answer` (tests/client/test_reconnect.py's
echo server, tests/client/fake_jobs.py's jobs, tests/client/fake_records.py's live records). It
records every call as `(connection number, method, params)`, can drop every connection (a
restart, or a close code such as 4408), answer new ones with close 4404, and serve plain HTTP
pages on the same port (the console's HTML and scripts, for a browser).
"""

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

NO_ANSWER = object()  # `answer` returns it for a request that must never be answered


@dataclass
class FakeConnection:
    number: int  # 1 for the first connection the server accepted
    ws: ServerConnection
    caller: str | None = None
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)  # server id -> what it watches


class RpcFailure(Exception):
    """Raised by `answer`: the request is answered with this error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.error = {"code": code, "message": message} | ({"data": data} if data is not None else {})


class FakeServer:
    """A WebSocket server at a free port of 127.0.0.1 (the same port again after `stop`/`start`)."""

    def __init__(self) -> None:
        self.server: Server | None = None
        self.port = 0
        self.connections: list[FakeConnection] = []
        self.calls: list[tuple[int, str, Any]] = []  # (connection number, method, params)
        self.signed_in: list[tuple[int, str]] = []  # (connection number, pubkey)
        self.roles: dict[str, str] = {}  # pubkey -> role whoami names (default "member")
        self.pages: dict[str, tuple[str, bytes]] = {}  # HTTP path -> (content type, body), for a browser
        self.not_found = False  # answer new connections with close 4404

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/circle"

    async def start(self) -> None:
        self.server = await serve(self._serve, "127.0.0.1", self.port, process_request=self._http)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection (1001, as a server going away does)."""
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        self.server = None

    async def drop_all(self, code: int = 1012, reason: str = "restart") -> None:
        """Close every open connection with `code` but keep listening (a restarting process)."""
        await asyncio.gather(*(c.ws.close(code, reason) for c in self.connections))

    def methods(self, number: int | None = None) -> list[str]:
        """The methods called, in order (on connection `number` only, if given)."""
        return [method for n, method, _ in self.calls if number is None or n == number]

    def params_of(self, method: str) -> list[Any]:
        """The params of every call of `method`, in order."""
        return [params for _, called, params in self.calls if called == method]

    async def notify(self, connection: FakeConnection, subscription: str, result: Any) -> None:
        """Push one notification of `subscription` on `connection` (nothing if it closed)."""
        message = {"subscription": subscription, "result": result}
        frame = {"jsonrpc": "2.0", "method": "subscription", "params": message}
        with contextlib.suppress(ConnectionClosed):
            await connection.ws.send(json.dumps(frame))

    # --- what subclasses answer -----------------------------------------------------------------

    async def answer(self, connection: FakeConnection, method: str, params: Any) -> Any:
        """The result of one request (or raise `RpcFailure`, or return `NO_ANSWER`)."""
        if method == "fetch_nonce":
            return f"sign in on connection {connection.number}"
        if method == "authenticate":
            connection.caller = params["pubkey"]
            self.signed_in.append((connection.number, params["pubkey"]))
            return True
        if method == "whoami":
            role = self.roles.get(connection.caller, "member") if connection.caller else None
            return {"authenticated": connection.caller is not None, "pubkey": connection.caller, "role": role}
        raise RpcFailure(-32601, "Method not found", {"method": method})

    async def answered(self, connection: FakeConnection, method: str, params: Any, result: Any) -> None:
        """Runs right after a result was sent, before the next frame is read (to push behind it)."""

    # --- serving --------------------------------------------------------------------------------

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        """A plain GET of one of `pages`; None: a WebSocket upgrade."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        page = self.pages.get(request.path)
        if page is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        content_type, body = page
        headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return Response(HTTPStatus.OK, "OK", headers, body)

    async def _serve(self, ws: ServerConnection) -> None:
        if self.not_found:
            await ws.close(4404, "circle not found")
            return
        connection = FakeConnection(len(self.connections) + 1, ws)
        self.connections.append(connection)
        with contextlib.suppress(ConnectionClosed):
            async for frame in ws:
                request = json.loads(frame)
                method, params = request["method"], request.get("params") or {}
                self.calls.append((connection.number, method, params))
                try:
                    result = await self.answer(connection, method, params)
                except RpcFailure as failure:
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": failure.error}))
                    continue
                if result is NO_ANSWER:
                    continue
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}))
                await self.answered(connection, method, params, result)
