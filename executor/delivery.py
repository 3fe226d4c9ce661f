"""Delivering a run's outcome to whoever waits for it: a WebSocket consumer via the channel layer.

Only channels' and channels-redis' public API is used here (`get_channel_layer`, the layer's
`serialize` and `send`); whether the layer lives on one Redis is read from its configuration in
the settings, not from the layer object.
"""

import asyncio
import logging
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import BaseChannelLayer, get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings

from executor.jobs import Job
from executor.layer import layer_on_one_redis
from executor.queue import Publication

logger = logging.getLogger("executor.delivery")

RESULT_EVENT = "script.result"


def too_big_for_the_layer(job: Job, size: int) -> dict[str, Any]:
    """The outcome sent instead of one whose message would pass the channel layer's cap."""
    limit = settings.CIRCLES_LAYER_MAX_MESSAGE_BYTES
    message = f"the run's answer is {size} bytes, more than the channel layer carries ({limit})"
    return {
        "run_id": job.run_id,
        "ok": False,
        "error": {"kind": "result_size", "message": message, "line": None, "column": None},
    }


def result_message(job: Job, outcome: dict[str, Any]) -> dict[str, Any]:
    """The channel-layer message a consumer's `script_result` handler receives."""
    return {"type": RESULT_EVENT, "run_id": job.run_id, "outcome": outcome}


class ResultDelivery:
    """Turns outcomes into messages for the consumers waiting on them.

    With the Redis pub/sub channel layer (the one configured whenever workers run), a result
    is one PUBLISH on the consumer's channel, in the layer's own encoding: the worker sends it
    in the same round trip as the job's acknowledgement (`JobQueue.finish`) instead of going
    through the layer's event loop and then acknowledging (two round trips, and a third of a
    worker's CPU per job, docs/benchmarks/play.md). Any other layer gets the message through
    `layer.send`, on one loop kept for the process's life.
    """

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        # Publishing on the queue's connection is right only when the layer lives on that one
        # Redis: a single host (listed once per connection), which the settings make REDIS_URL,
        # as they do for the queue.
        single_redis = isinstance(self.layer, RedisPubSubChannelLayer) and layer_on_one_redis()
        self.publisher: RedisPubSubChannelLayer | None = self.layer if single_redis else None
        self.loop = None if self.publisher is not None else asyncio.new_event_loop()

    def publication(self, job: Job, outcome: dict[str, Any]) -> Publication | None:
        """What to PUBLISH with the acknowledgement, or None when nothing needs publishing.

        Nothing does when nobody waits (webhook jobs: their row holds the outcome) or when the
        layer is not pub/sub, in which case the message is sent here, before returning.
        """
        if not job.reply_channel:
            return None
        message = result_message(job, outcome)
        publisher = self.publisher
        if publisher is not None:
            payload = publisher.serialize(message)
            if len(payload) > settings.CIRCLES_LAYER_MAX_MESSAGE_BYTES:
                # Redis drops a subscriber whose output buffer passes its pubsub limit (32 MiB
                # by default): a big answer would be lost, and the caller would see a timeout.
                logger.warning("run %s: answer of %d bytes refused for the layer", job.run_id, len(payload))
                payload = publisher.serialize(result_message(job, too_big_for_the_layer(job, len(payload))))
            return job.reply_channel, payload
        assert self.loop is not None  # made in __init__ whenever there is no publisher
        self.loop.run_until_complete(self._layer().send(job.reply_channel, message))
        return None

    def _layer(self) -> BaseChannelLayer:
        if self.layer is None:  # CHANNEL_LAYERS names no default layer: nowhere to send
            raise RuntimeError(f"no channel layer {DEFAULT_CHANNEL_LAYER!r} to deliver results on")
        return self.layer

    def close(self) -> None:
        """Release the loop of a non-pub/sub layer."""
        if self.loop is not None:
            self.loop.close()
