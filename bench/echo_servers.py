"""Baseline servers for `bench.ws_rpc`: a bare Channels echo (ASGI app) and a raw `websockets` echo.

Both answer every JSON-RPC frame with `{"jsonrpc": "2.0", "result": <the request>, "id": <its id>}`
and do nothing else, so what they cost is the floor under any consumer on the same stack.

* `channels_echo_app`: ProtocolTypeRouter/URLRouter/`AsyncJsonWebsocketConsumer`, with the same
  in-memory channel layer as the project's embedded mode (Channels gives every consumer a channel
  when a layer is configured, which costs something per message). Serve it with uvicorn exactly as
  the project: `uvicorn bench.echo_servers:channels_echo_app --no-access-log --lifespan off`.
* `python -m bench.echo_servers --port N`: a `websockets.asyncio.server` echo (uvloop when installed,
  as uvicorn uses it), stopped by SIGTERM/SIGINT.
"""

import argparse
import asyncio
import contextlib
import json
import signal
from typing import Any

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-echo-not-secret",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=["channels"],
        DATABASES={},
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
        USE_TZ=True,
    )
    django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import re_path


def echo_response(content: Any) -> dict[str, Any]:
    """The echo's answer to one decoded frame."""
    request_id = content.get("id") if isinstance(content, dict) else None
    return {"jsonrpc": "2.0", "result": content, "id": request_id}


class EchoConsumer(AsyncJsonWebsocketConsumer):
    """Accepts every connection and echoes each JSON frame back as a JSON-RPC result."""

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json(echo_response(content))


channels_echo_app = ProtocolTypeRouter(
    {"websocket": URLRouter([re_path(r"^(?P<circle_pk>[^/]+)/?$", EchoConsumer.as_asgi())])}
)


async def _websockets_handler(ws) -> None:
    async for message in ws:
        await ws.send(json.dumps(echo_response(json.loads(message))))


async def serve_websockets_echo(host: str, port: int) -> None:
    """Serve the raw `websockets` echo until SIGTERM or SIGINT."""
    from websockets.asyncio.server import serve

    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with serve(_websockets_handler, host, port):
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    runner = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    runner(serve_websockets_echo(args.host, args.port))


if __name__ == "__main__":
    main()
