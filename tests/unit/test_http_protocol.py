"""A connection's HTTP protocol is freed by reference counting once it has upgraded to a WebSocket."""

import asyncio
import gc
import weakref
from typing import Any

import uvicorn
from websockets.asyncio.client import connect

from circleproject.http_protocol import CirclesHttpProtocol

made: list[weakref.ref] = []


class Recorded(CirclesHttpProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        made.append(weakref.ref(self))


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message["text"]})


async def test_an_upgraded_connection_leaves_no_http_protocol_for_the_collector() -> None:
    config = uvicorn.Config(
        echo_app,
        host="127.0.0.1",
        port=0,
        http=Recorded,
        ws="websockets-sansio",
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    gc.disable()  # only reference counting frees anything from here on
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"  # upgraded, and the WebSocket protocol serves it
            assert len(made) == 1
            assert made[0]() is None  # the HTTP protocol is gone while the connection lives on
    finally:
        gc.enable()
        server.should_exit = True
        await serving
        made.clear()
