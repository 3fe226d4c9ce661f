"""A WebSocket client on a plain blocking socket that reads only when told to: a reader that stalls.

The `websockets` client reads its socket in the background (into its own queue), so a test that
simply stops calling `recv()` does not stop the bytes. Here nothing is read unless the test
asks, and the socket's receive buffer is made small before connecting, so the server's writes
back up into its own buffers as they would behind a real client that stopped reading.
"""

import json
import socket
from typing import Any
from urllib.parse import urlparse

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from tests.helpers.keys import WalletKey


class StallingClient:
    """One connection; `call` reads until its answer, `stall` by simply not reading."""

    def __init__(self, url: str, *, receive_buffer: int = 4096) -> None:
        parsed = urlparse(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # before connect
        self.sock.settimeout(30)
        self.sock.connect((parsed.hostname, parsed.port))
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        self.protocol.send_request(self.protocol.connect())
        self.flush()
        self.notifications = 0
        self.close: Close | None = None
        self.ids = 0
        while not any(isinstance(event, Response) for event in self.read()):
            pass

    def flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def read(self) -> list[Any]:
        """Read once from the socket (b"" at EOF); the protocol events it completed."""
        data = self.sock.recv(65536)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        events = self.protocol.events_received()
        self.flush()  # pongs, the closing handshake
        if not data and not events:
            raise EOFError
        return events

    def messages(self) -> list[dict]:
        """The text frames one read completed (notifications counted; the close frame kept)."""
        found = []
        for event in self.read():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                message = json.loads(event.data)
                if message.get("method") == "subscription":
                    self.notifications += 1
                else:
                    found.append(message)
            elif isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                self.close = Close.parse(event.data)
        return found

    def call(self, method: str, params: Any = None) -> Any:
        self.ids += 1
        request = {"jsonrpc": "2.0", "method": method, "id": self.ids, "params": params or {}}
        self.protocol.send_text(json.dumps(request).encode())
        self.flush()
        while True:
            for message in self.messages():
                if message.get("id") == self.ids:
                    assert "result" in message, message
                    return message["result"]

    def sign_in(self, key: WalletKey) -> None:
        nonce = self.call("fetch_nonce", {"pubkey": key.pubkey})
        assert self.call("authenticate", {"pubkey": key.pubkey, "signature": key.sign(nonce)}) is True

    def read_to_the_end(self) -> None:
        """Read everything the server sent, up to its close frame or the connection's end."""
        while self.close is None:
            try:
                self.messages()
            except (EOFError, ConnectionResetError):
                return

    def shut(self) -> None:
        self.sock.close()
