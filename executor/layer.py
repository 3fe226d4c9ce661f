"""The Redis channel layer results travel on, made to ride out Redis outages.

Results go from a worker to the waiting consumer over Redis pub/sub (channels-redis'
`RedisPubSubChannelLayer`): one PUBLISH per result and a push to the subscriber, where the
list-based core layer took three round trips to send and a polling loop to receive
(docs/BENCHMARKS.md). A consumer is always listening on its channel before it queues a job,
so pub/sub's "no subscriber, no message" costs nothing here.

Riding out an outage needs channels-redis' internals: its public API has no way to name a
channel without subscribing it at once (`new_channel` raises while Redis is away, and the
consumer's first `receive` would subscribe and raise the same way). So this module uses the
per-event-loop layer (`_get_layer()`), its `prefix` and `channels` (channel name -> the
asyncio.Queue its shard's receiver fills) and `_get_shard(name).subscribe(name)`, and
requirements.txt pins channels-redis to the one version these were read from.
tests/integration/test_channel_layer.py fails when the installed version is not the pinned one,
when those parts change shape, or when a channel named while Redis is away stops receiving
once Redis is back.
"""

import asyncio
import logging
import uuid

from channels import DEFAULT_CHANNEL_LAYER
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings

from executor.redis_clients import REDIS_DOWN

logger = logging.getLogger("executor.layer")

_retries: set[asyncio.Task] = set()  # background subscriptions, kept alive until done
MAX_BACKOFF_SECONDS = 5.0


class ResilientRedisPubSubChannelLayer(RedisPubSubChannelLayer):
    """The pub/sub layer, except that a consumer can start while Redis is away.

    The stock `new_channel` subscribes at once and raises when Redis is down, which fails
    the WebSocket handshake. Here the channel exists at once and its subscription is
    retried in the background; once subscribed, redis-py re-subscribes after reconnects.
    """

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A channel name for a consumer of this process, subscribed now or as soon as Redis is back."""
        layer = self._get_layer()
        channel = f"{layer.prefix}{prefix}{uuid.uuid4().hex}"
        layer.channels[channel] = asyncio.Queue()
        try:
            await layer._get_shard(channel).subscribe(channel)
        except REDIS_DOWN as exc:
            logger.warning("channel layer cannot subscribe (%s); retrying in the background", exc)
            retry = asyncio.ensure_future(_subscribe_when_back(layer, channel))
            _retries.add(retry)
            retry.add_done_callback(_retries.discard)
        return channel


async def _subscribe_when_back(layer: RedisPubSubChannelLayer, channel: str) -> None:
    delay = 0.1
    while channel in layer.channels:  # gone once its consumer ended
        await asyncio.sleep(delay)
        try:
            await layer._get_shard(channel).subscribe(channel)
            return
        except REDIS_DOWN:
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)


def layer_on_one_redis() -> bool:
    """Whether the channel layer's hosts are all one Redis (the settings list REDIS_URL once per
    pub/sub connection, `CIRCLES_CHANNEL_LAYER_CONNECTIONS`): then a plain PUBLISH on any
    connection to it is the layer's send."""
    hosts = settings.CHANNEL_LAYERS[DEFAULT_CHANNEL_LAYER].get("CONFIG", {}).get("hosts") or [None]
    return all(host == hosts[0] for host in hosts)
