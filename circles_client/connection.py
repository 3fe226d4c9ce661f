"""One WebSocket to a circle: send JSON-RPC requests, match responses by id, fail all on close.

`Connection` knows nothing of keys or reconnecting (that is `circles_client.client`). A
background reader task resolves each request's future as its response arrives (responses
come in any order). When the socket closes, every request still waiting fails at once with
a `ConnectionLost` naming the method and the close code, so nothing hangs.

Frames the server sends on its own (a request object without an id: `{"method": "subscription",
"params": {...}}`) go to the connection's `on_notification` callback, in the order they came.
"""

import asyncio
import contextlib
import itertools
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from circles_client.errors import (
    ConnectionLost,
    RequestTimeout,
    RpcError,
    connection_error,
)

logger = logging.getLogger("circles_client")

Call = tuple[str, Any]  # (method, params or None)
NotificationHandler = Callable[[str, Any], None]  # (method, params) of a frame the server pushed
ResultHook = Callable[[Any], None]


def request_object(method: str, params: Any, request_id: int | None) -> dict[str, Any]:
    """A JSON-RPC 2.0 request (a notification when `request_id` is None)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if request_id is not None:
        message["id"] = request_id
    return message


def outcome(response: dict[str, Any], method: str | None) -> tuple[bool, Any]:
    """(True, result) or (False, the typed exception) for one response object."""
    if "error" in response and isinstance(response["error"], dict):
        return False, RpcError.from_response(response["error"], method=method)
    return True, response.get("result")


class Connection:
    """An open WebSocket to `url` with the requests waiting on it."""

    def __init__(
        self, ws: ClientConnection, url: str, *, on_notification: NotificationHandler | None = None
    ) -> None:
        self.url = url
        self._ws = ws
        self._on_notification = on_notification
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future, str, ResultHook | None]] = {}
        self._abandoned: deque[int] = deque(maxlen=1024)  # timed out: drop their late answers
        self._frame_waiters: deque[asyncio.Future] = deque()  # answers that carry no id of ours
        self.lost: ConnectionLost | None = None
        self._reader = asyncio.create_task(self._read(), name=f"circles-reader {url}")

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 5.0,
        on_notification: NotificationHandler | None = None,
    ) -> "Connection":
        """Open the WebSocket (no Origin header: a native client); errors become `ConnectionLost`.

        Every `ping_interval` seconds a ping goes out; a pong not back within `ping_timeout`
        fails the connection, so a peer that vanished without a close is noticed. Closing (ours,
        or after a missing pong) waits at most `close_timeout` for the peer's close frame.
        `on_notification(method, params)` is called for every frame the server pushes.
        """
        try:
            ws = await ws_connect(
                url,
                open_timeout=open_timeout,
                ping_interval=ping_interval,
                ping_timeout=ping_timeout,
                close_timeout=close_timeout,
                max_size=None,
                compression=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise ConnectionLost(f"cannot connect to {url}: handshake refused with HTTP {status}") from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise ConnectionLost(f"cannot connect to {url}: {exc or type(exc).__name__}") from exc
        return cls(ws, url, on_notification=on_notification)

    @property
    def closed(self) -> bool:
        return self.lost is not None

    def when_lost(self, callback: Callable[["Connection"], None]) -> None:
        """Call `callback(self)` once the connection has closed and every waiting request failed."""
        self._reader.add_done_callback(lambda _: callback(self))

    async def close(self) -> None:
        """Close the socket normally; requests still waiting fail with `ConnectionLost`."""
        with contextlib.suppress(Exception):
            await self._ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def request(
        self, method: str, params: Any = None, *, timeout: float = 30.0, on_result: ResultHook | None = None
    ) -> Any:
        """Send one request and return its result; raises its `RpcError`, `ConnectionLost` or timeout.

        `on_result(result)` runs in the reader the moment a successful answer arrives, before the
        next frame is read: a subscription's id is known before its first notification is routed.
        """
        request_id = next(self._ids)
        future = self._expect(request_id, method, on_result)
        await self._send(request_object(method, params, request_id))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self._abandon([request_id])
            raise RequestTimeout(f"{method}: no answer within {timeout:g} s") from None

    async def notify(self, method: str, params: Any = None) -> None:
        """Send a notification: the server runs it and never answers."""
        await self._send(request_object(method, params, None), waited_for=False)

    async def batch(self, calls: Iterable[Call], *, timeout: float = 30.0) -> list[tuple[bool, Any]]:
        """Send `calls` as one batch frame; (ok, result or exception) for each, in order.

        A batch the server refuses as a whole (empty, over its size cap) raises that error.
        """
        calls = list(calls)
        ids = [next(self._ids) for _ in calls]
        pairs = list(zip(ids, calls, strict=True))
        futures = [self._expect(request_id, method) for request_id, (method, _) in pairs]
        frame = self._expect_frame()
        entries = [request_object(method, params, request_id) for request_id, (method, params) in pairs]
        await self._send(entries)
        gathered = asyncio.gather(*futures, return_exceptions=True)
        waiting = {gathered, frame} if calls else {frame}  # an empty batch is only ever refused
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        self._drop_frame_waiter(frame)
        if frame.done() and not frame.cancelled() and frame.exception() is not None:
            done = {gathered}  # the connection closed: every entry has failed with its own ConnectionLost
            await gathered
        if gathered in done and calls:
            results = gathered.result()
            return [(not isinstance(r, BaseException), r) for r in results]
        gathered.cancel()
        self._abandon(ids)
        if frame in done:
            ok, value = outcome(frame.result(), "batch") if isinstance(frame.result(), dict) else (True, None)
            raise value if not ok else RpcError(-32600, "unexpected answer to a batch", frame.result())
        raise RequestTimeout(f"batch of {len(calls)}: no answer within {timeout:g} s")

    async def send_raw(self, frame: str | bytes, *, timeout: float = 10.0) -> Any:
        """Send any frame as it is (text or binary) and return the next answer that matches no request.

        For probing a server: a single error object comes back raised as its `RpcError`
        (`ParseError` for junk), anything else is returned decoded.
        """
        waiter = self._expect_frame()
        try:
            await self._send_text(frame)
            answer = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise RequestTimeout(f"raw frame: no answer within {timeout:g} s") from None
        finally:
            self._drop_frame_waiter(waiter)
        if isinstance(answer, dict):
            ok, value = outcome(answer, None)
            if not ok:
                raise value
        return answer

    # --- internals -------------------------------------------------------------------------

    def _expect(self, request_id: int, method: str, on_result: ResultHook | None = None) -> asyncio.Future:
        if self.lost is not None:
            raise self._lost_for(method)
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (future, method, on_result)
        return future

    def _expect_frame(self) -> asyncio.Future:
        if self.lost is not None:
            raise self._lost_for("raw frame")
        future = asyncio.get_running_loop().create_future()
        self._frame_waiters.append(future)
        return future

    def _drop_frame_waiter(self, future: asyncio.Future) -> None:
        with contextlib.suppress(ValueError):
            self._frame_waiters.remove(future)

    def _abandon(self, ids: list[int]) -> None:
        for request_id in ids:
            if self._pending.pop(request_id, None) is not None:
                self._abandoned.append(request_id)

    async def _send(self, message: Any, *, waited_for: bool = True) -> None:
        await self._send_text(json.dumps(message, ensure_ascii=False), waited_for=waited_for)

    async def _send_text(self, frame: str | bytes, *, waited_for: bool = True) -> None:
        """Send a frame. If the socket has closed, whoever waits for an answer hears it from the
        reader (which fails every waiting request); a frame nobody waits for raises here."""
        try:
            await self._ws.send(frame)
        except ConnectionClosed:
            if not waited_for:
                raise self._lost_for("send") from None

    def _lost_for(self, what: str) -> ConnectionLost:
        code, reason = self._ws.close_code, self._ws.close_reason or ""
        return connection_error(code, reason, context=f"{what}: the connection to {self.url} is closed")

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                self._dispatch(frame)
        except ConnectionClosed:
            pass
        except Exception:  # a bug here must not leave requests hanging
            logger.exception("reader of %s failed", self.url)
            await self._ws.close()
        finally:
            self._fail_everything()

    def _dispatch(self, frame: str | bytes) -> None:
        try:
            message = json.loads(frame)
        except ValueError:
            logger.warning("ignoring a frame that is not JSON from %s", self.url)
            return
        if isinstance(message, list):
            resolved = [self._resolve(entry) for entry in message if isinstance(entry, dict)]
            if not any(resolved):
                self._answer_frame(message)
        elif isinstance(message, dict) and self._is_pushed(message):
            self._notify(message)
        elif isinstance(message, dict) and not self._resolve(message):
            self._answer_frame(message)

    def _is_pushed(self, message: dict[str, Any]) -> bool:
        """A notification from the server (a request object without an id) with someone to take it."""
        pushed = isinstance(message.get("method"), str) and "id" not in message
        return pushed and self._on_notification is not None

    def _notify(self, message: dict[str, Any]) -> None:
        assert self._on_notification is not None
        try:
            self._on_notification(message["method"], message.get("params"))
        except Exception:  # one bad handler must not stop the reader (and fail every request)
            logger.exception("handling a %r notification from %s failed", message["method"], self.url)

    def _resolve(self, response: dict[str, Any]) -> bool:
        """Settle the request `response` answers; False when it answers none of ours."""
        request_id = response.get("id")
        if isinstance(request_id, int) and not isinstance(request_id, bool):
            if request_id in self._abandoned:
                return True
            waiting = self._pending.pop(request_id, None)
            if waiting is not None:
                future, method, on_result = waiting
                if not future.done():
                    ok, value = outcome(response, method)
                    if ok and on_result is not None:
                        on_result(value)
                    future.set_result(value) if ok else future.set_exception(value)
                return True
        return False

    def _answer_frame(self, message: Any) -> None:
        while self._frame_waiters:
            waiter = self._frame_waiters.popleft()
            if not waiter.done():
                waiter.set_result(message)
                return
        logger.warning("ignoring an answer that matches no request: %.200s", json.dumps(message))

    def _fail_everything(self) -> None:
        code, reason = self._ws.close_code, self._ws.close_reason or ""
        self.lost = connection_error(code, reason, context=f"the connection to {self.url} closed")
        for request_id, (future, method, _) in list(self._pending.items()):
            if not future.done():
                future.set_exception(
                    connection_error(
                        code,
                        reason,
                        context=f"{method} (id {request_id}): the connection closed before its answer came;"
                        " it may or may not have run",
                    )
                )
        self._pending.clear()
        while self._frame_waiters:
            waiter = self._frame_waiters.popleft()
            if not waiter.done():
                waiter.set_exception(connection_error(code, reason, context="the connection closed"))
