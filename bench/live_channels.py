"""The Channels way of live records, the baseline of `bench.live`: a group per circle on channels-redis.

An ASGI app of its own (no project code): `AsyncWebsocketConsumer`s with the real
`channels_redis.core.RedisChannelLayer` (BENCH_REDIS_URL, the same redis-server as ours). A
client sends `{"method": "subscribe", "id": N, ...}`; the consumer joins the circle's group
(`circle-<name>` from the URL), answers `{"result": "<subscription id>", "id": N}` and from
then on forwards every group message `{"type": "record.change", "change": <change object>}` as
the same notification frame ours sends:

    {"jsonrpc": "2.0", "method": "subscription", "params": {"subscription": id, "result": change}}

A publisher (`bench.live_publish channels`) calls `group_send` once per change. Frames are
encoded with orjson, as ours, so the comparison is of the delivery path, not of JSON libraries.

    uvicorn bench.live_channels:application --no-access-log --lifespan off
"""

import os
import secrets
from typing import Any

import django
import orjson
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-live-not-secret",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=["channels"],
        DATABASES={},
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")]},
            }
        },
        USE_TZ=True,
    )
    django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import re_path

CHANGE_EVENT = "record.change"


def group_name(circle: str) -> str:
    """The channel-layer group of one circle's changes (group names: ASCII, < 100 characters)."""
    return f"circle-{circle[:60]}"


class ChangesConsumer(AsyncWebsocketConsumer):
    """Joins its circle's group on `subscribe` and forwards each change as a notification."""

    subscription = ""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        request = orjson.loads(text_data or bytes_data or b"{}")
        if request.get("method") == "subscribe" and not self.subscription:
            self.subscription = "0x" + secrets.token_hex(16)
            await self.channel_layer.group_add(self.group(), self.channel_name)
            answer: dict[str, Any] = {"jsonrpc": "2.0", "result": self.subscription, "id": request.get("id")}
        else:
            answer = {"jsonrpc": "2.0", "result": None, "id": request.get("id")}
        await self.send(text_data=orjson.dumps(answer).decode())

    async def record_change(self, event: dict[str, Any]) -> None:
        frame = {
            "jsonrpc": "2.0",
            "method": "subscription",
            "params": {"subscription": self.subscription, "result": event["change"]},
        }
        await self.send(text_data=orjson.dumps(frame).decode())

    async def disconnect(self, code: int) -> None:
        if self.subscription:
            await self.channel_layer.group_discard(self.group(), self.channel_name)

    def group(self) -> str:
        return group_name(self.scope["url_route"]["kwargs"]["circle"])


application = ProtocolTypeRouter(
    {"websocket": URLRouter([re_path(r"^(?P<circle>[^/?]+)/?$", ChangesConsumer.as_asgi())])}
)
