"""Delivering a run's outcome to whoever waits for it: a WebSocket consumer via the channel layer."""

import asyncio
from typing import Any

from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer

from executor.jobs import Job

RESULT_EVENT = "script.result"


def result_message(job: Job, outcome: dict[str, Any]) -> dict[str, Any]:
    """The channel-layer message a consumer's `script_result` handler receives."""
    return {"type": RESULT_EVENT, "run_id": job.run_id, "outcome": outcome}


class ResultDelivery:
    """Sends outcomes from a synchronous worker, over one event loop kept for the process's life.

    channels-redis keeps its connection pool per event loop, so reusing one loop keeps the
    connections warm instead of reconnecting for every job.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.layer = get_channel_layer()

    def deliver(self, job: Job, outcome: dict[str, Any]) -> None:
        """Send `outcome` to the job's reply channel (webhook jobs have none: their row holds it)."""
        if job.reply_channel:
            self.loop.run_until_complete(self.layer.send(job.reply_channel, result_message(job, outcome)))

    def close(self) -> None:
        """Release the layer's connections and the loop."""
        if isinstance(self.layer, RedisPubSubChannelLayer):
            self.loop.run_until_complete(self.layer.flush())  # pub/sub: unsubscribes and disconnects
        self.loop.close()
