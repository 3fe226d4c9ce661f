"""A TCP proxy on the test's event loop that can hold back the server's replies (a lost answer).

Requests always go through; after `hold_replies()` the replies on the connections open at that
moment are kept back (as when an answer is late past the client's timeout), while connections
opened later pass both ways. It is real networking between a real client and a real server.
"""

import asyncio
import contextlib


class ReplyHoldingProxy:
    """Forwards 127.0.0.1:`port` to `target_port`; `hold_replies` stalls the replies of open connections."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: list[asyncio.Event] = []  # per connection: set while its replies may pass
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> "ReplyHoldingProxy":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def hold_replies(self) -> None:
        """From now on, the connections open now get no more bytes from the server."""
        for gate in self._open:
            gate.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        gate = asyncio.Event()
        gate.set()
        self._open.append(gate)
        pumps = [
            asyncio.ensure_future(self._pump(client_reader, server_writer, None)),
            asyncio.ensure_future(self._pump(server_reader, client_writer, gate)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for writer in (client_writer, server_writer):
                writer.close()
            self._tasks.difference_update(pumps)

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gate: asyncio.Event | None
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if gate is not None:
                    await gate.wait()  # a held reply waits here until the connection ends
                writer.write(data)
                await writer.drain()
