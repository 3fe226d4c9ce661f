"""The Redis channel layer, made to ride out Redis outages instead of killing every connection."""

import asyncio
import logging

import redis
from channels_redis.core import RedisChannelLayer

logger = logging.getLogger("executor.layer")

MAX_BACKOFF_SECONDS = 5.0


class ResilientRedisChannelLayer(RedisChannelLayer):
    """channels-redis' layer whose `receive` waits for Redis to come back.

    Every consumer listens on its own channel; with the stock layer a Redis outage raises
    out of that listen and Channels ends the consumer, so every WebSocket drops at once.
    Here the listen retries with backoff: sockets stay open, `play` answers -32012 while the
    queue is away, and results flow again when Redis returns.
    """

    async def receive(self, channel: str) -> dict:
        """Wait for the next message on `channel`, retrying across Redis outages."""
        delay = 0.1
        while True:
            try:
                return await super().receive(channel)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                logger.warning("channel layer lost Redis (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
