"""A lean WebSocket subscriber for `bench.live`: RFC 6455 framing by hand, so the load generator is cheap.

With the `websockets` library a received frame costs the load generator ~25 µs of Python, about
what our server spends to send it, so on a 2-core machine the clients, not the server, set the
notification rate. This client does the opening handshake and the few JSON-RPC calls of a
subscriber (sign-in, `subscribe`) itself, then only splits the byte stream into frames: a
notification costs a header parse and a counter increment (and, when recording, one bytes search
for its `"key"`). It answers pings (uvicorn sends them) and notes a close frame's code. No
extensions are offered (no compression), as with the `websockets` clients of the other phases.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.helpers import BenchError
from circles_client.keys import SigningKey

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
KEY_FIELD = b'"key":"'

Notified = Callable[[bytes, float], None]  # (a notification frame's payload, its arrival time)


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked, final client frame."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    repeated = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")
    return header + mask + masked


def key_in(payload: bytes) -> str:
    """The `"key"` of the change in a notification (the first key field of the frame)."""
    start = payload.find(KEY_FIELD) + len(KEY_FIELD)
    return payload[start : payload.index(b'"', start)].decode()


class LeanSubscriber(asyncio.Protocol):
    """One WebSocket: answers matched by id until `counting`; from then on every text frame is a
    notification handed to `on_notification`."""

    def __init__(self, on_notification: Notified) -> None:
        self.on_notification = on_notification
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.handshaken = asyncio.get_running_loop().create_future()
        self.pending: dict[int, asyncio.Future] = {}
        self.next_id = 0
        self.counting = False
        self.subscribe_id = -1
        self.close_code: int | None = None
        self.lost = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, url: str, on_notification: Notified) -> LeanSubscriber:
        parts = urlsplit(url)
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: cls(on_notification), parts.hostname, parts.port)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        assert protocol.transport is not None
        protocol.transport.write(request.encode())
        async with asyncio.timeout(60):
            await protocol.handshaken
        return protocol

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        at = time.perf_counter()
        self.buffer += data
        if not self.handshaken.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.handshaken.set_exception(BenchError(f"handshake refused: {head[:200]!r}"))
                return
            self.handshaken.set_result(None)
        self._frames(at)

    def _frames(self, at: float) -> None:
        buffer = self.buffer
        offset, size = 0, len(buffer)
        while size - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            length, start = second & 0x7F, offset + 2
            if length == 126:
                if size - offset < 4:
                    break
                length, start = struct.unpack_from("!H", buffer, offset + 2)[0], offset + 4
            elif length == 127:
                if size - offset < 10:
                    break
                length, start = struct.unpack_from("!Q", buffer, offset + 2)[0], offset + 10
            if size < start + length:
                break
            opcode = first & 0x0F
            if opcode == TEXT:
                payload = bytes(buffer[start : start + length])
                if self.counting:
                    self.on_notification(payload, at)
                else:
                    self._answer(payload)
            elif opcode == PING:
                self._send(PONG, bytes(buffer[start : start + length]))
            elif opcode == CLOSE:
                self.close_code = struct.unpack_from("!H", buffer, start)[0] if length >= 2 else 1005
            offset = start + length
        if offset:
            del buffer[:offset]

    def _answer(self, payload: bytes) -> None:
        message = orjson.loads(payload)
        if message.get("id") == self.subscribe_id:
            self.counting = True  # the frames after its answer on the socket are notifications
        future = self.pending.pop(message.get("id"), None)
        if future is not None and not future.done():
            future.set_result(message)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"connection closed: {self.close_code}"))
        if not self.handshaken.done():
            self.handshaken.set_exception(ConnectionError("closed during the handshake"))
        if not self.lost.done():
            self.lost.set_result(None)

    # --- calls --------------------------------------------------------------------------------

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        request = {"jsonrpc": "2.0", "method": method, "params": params, "id": self.next_id}
        self._send(TEXT, orjson.dumps(request))
        async with asyncio.timeout(30):
            response = await future
        if "result" not in response:
            raise BenchError(f"{method}: {response!r:.300}")
        return response["result"]

    async def sign_in(self, key: SigningKey) -> None:
        nonce = await self.call("fetch_nonce", {"pubkey": key.pubkey})
        if await self.call("authenticate", {"pubkey": key.pubkey, "signature": key.sign(nonce)}) is not True:
            raise BenchError("sign-in refused")

    async def subscribe(self, params: dict[str, Any]) -> str:
        """Subscribe; from its answer on, every text frame counts as a notification."""
        self.subscribe_id = self.next_id + 1
        subscription = await self.call("subscribe", params)
        if not isinstance(subscription, str):
            raise BenchError(f"subscribe answered {subscription!r:.300}")
        return subscription

    def closed_early(self) -> bool:
        return self.lost.done() or self.close_code is not None

    async def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._send(CLOSE, struct.pack("!H", 1000))
            try:
                async with asyncio.timeout(5):
                    await asyncio.shield(self.lost)
            except TimeoutError:
                self.transport.abort()
