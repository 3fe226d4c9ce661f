"""A job's changes, pushed to its circle's channel-layer group once committed.

Every status change becomes one event (`event_of`, `run_event`): `{job_id, caller_id, status,
revision, updated_at}`, with `output`, `value` and `error` when the status is final. It goes to
the group `circle.<id>.jobs` as a `subscription.event` message of topic `jobs`, naming its routes
(`event_routes`: the job, its caller, all jobs); each ASGI process's event hub
(`circles.event_hub`) hands it to the connections watching one of them, whose subscriptions
(`circles.subscriptions`) turn it into notifications. With channels-redis
the group reaches every ASGI process; embedded, the in-memory layer lives on the ASGI process's
event loop, so a thread of the in-process executor hands its events to that loop (`bind_loop`).

From threads with the Redis pub/sub layer on one Redis (every deployment with workers), a group
send is what the layer's `group_send` does, one PUBLISH of the layer's own encoding on the
group's channel, so `SyncPublisher` sends it on a plain Redis client (`publication`), and a job
slot can send a run's end with the queue's acknowledgement (`executor.job_worker`), instead of
running the layer on an event loop of its own per call (a third of the publish's cost, and one
more round trip). The group channel's name is channels-redis' (pinned in requirements.txt;
tests/integration/test_channel_layer.py checks it).
"""

import asyncio
import logging
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings

from circles.changes import iso
from executor.job_rules import FINAL
from executor.layer import layer_on_one_redis
from executor.models import JobRecord
from executor.queue import Publication
from executor.redis_clients import sync_client

logger = logging.getLogger("executor.job_events")

TOPIC = "jobs"
EVENT_TYPE = "subscription.event"
Event = dict[str, Any]
CircleEvent = tuple[int, Event]  # an event and the circle whose group it goes to


def group_name(circle_id: int) -> str:
    """The channel-layer group of a circle's job events."""
    return f"circle.{circle_id}.jobs"


def event_of(record: JobRecord) -> Event:
    """The event of `record`'s current state (the final fields when its status is final)."""
    event: Event = {
        "job_id": str(record.id),
        "caller_id": record.caller_id,
        "status": record.status,
        "revision": record.revision,
        "updated_at": iso(record.updated_at),
    }
    if record.status in FINAL:
        event.update(output=record.output, value=record.value, error=record.error)
    return event


def run_event(
    job_id: str, caller_id: str, status: str, revision: int, updated_at: datetime, **final: Any
) -> Event:
    """The event of a job whose row a run just wrote (`executor.job_rows`), without reading it back:
    `final` holds `output`, `value` and `error` when `status` is final."""
    event: Event = {
        "job_id": job_id,
        "caller_id": caller_id,
        "status": status,
        "revision": revision,
        "updated_at": iso(updated_at),
    }
    if status in FINAL:
        event.update(output=final.get("output"), value=final.get("value"), error=final.get("error"))
    return event


def circle_event(record: JobRecord) -> CircleEvent:
    """`event_of(record)` with the circle it is published to."""
    return record.circle_id, event_of(record)


ALL_JOBS_ROUTE = "all"


def job_route(job_id: str) -> str:
    """The route of one job's events (a subscription with `job_id`, a waiting `run_job`)."""
    return f"job:{job_id}"


def caller_route(caller_id: str) -> str:
    """The route of the events of one caller's jobs (a subscription without `job_id` or `all`)."""
    return f"caller:{caller_id}"


def event_routes(event: Event) -> list[str]:
    """Who an event is for: watchers of its job, of its caller's jobs, of all the circle's jobs."""
    return [job_route(event["job_id"]), caller_route(event["caller_id"]), ALL_JOBS_ROUTE]


def layer_message(circle_id: int, event: Event) -> dict[str, Any]:
    """The channel-layer message carrying `event` to the group of circle `circle_id`: with the
    group and the routes, for the ASGI processes' event hubs (`circles.event_hub`)."""
    return {
        "type": EVENT_TYPE,
        "topic": TOPIC,
        "group": group_name(circle_id),
        "routes": event_routes(event),
        "event": event,
    }


async def publish_all(events: Iterable[CircleEvent]) -> None:
    """Send `events` to their circles' groups, in order; a layer failure is logged."""
    layer = get_channel_layer()
    if layer is None:  # the settings always configure one
        raise RuntimeError("no channel layer is configured")
    for circle_id, event in events:
        try:
            await layer.group_send(group_name(circle_id), layer_message(circle_id, event))
        except Exception:
            logger.exception("could not publish job %s's change", event["job_id"])


def _layer_prefix() -> str:
    config = settings.CHANNEL_LAYERS[DEFAULT_CHANNEL_LAYER].get("CONFIG", {})
    return config.get("prefix", "asgi")  # channels-redis' default


def group_channel(circle_id: int) -> str:
    """The Redis pub/sub channel the pub/sub layer sends circle `circle_id`'s group on."""
    # As RedisPubSubLoopLayer._get_group_channel_name names it.
    return f"{_layer_prefix()}__group__{group_name(circle_id)}"


class SyncPublisher:
    """Publishing from threads: onto the ASGI loop when one is bound (embedded), else straight to
    Redis when the layer is pub/sub on one Redis, else through the layer on a loop of its own."""

    def __init__(self) -> None:
        self.bound: asyncio.AbstractEventLoop | None = None
        self.own: asyncio.AbstractEventLoop | None = None
        self.lock = threading.Lock()
        self._direct: tuple[RedisPubSubChannelLayer, redis.Redis] | None = None
        self._looked = False  # whether `_direct` was worked out (from the settings, once)

    def direct(self) -> tuple[RedisPubSubChannelLayer, redis.Redis] | None:
        """The layer (for its encoding) and a Redis client to PUBLISH on, when that is the layer's send."""
        if not self._looked:
            self._looked = True
            layer = get_channel_layer()
            if isinstance(layer, RedisPubSubChannelLayer) and layer_on_one_redis() and settings.REDIS_URL:
                self._direct = (layer, sync_client(timeout=5, connect_timeout=2))
        return self._direct

    def publication(self, circle_event: CircleEvent) -> Publication | None:
        """The PUBLISH that sends `circle_event` to its group, when events go straight to Redis."""
        direct = self.direct() if self.bound is None else None
        if direct is None:
            return None
        circle_id, event = circle_event
        return group_channel(circle_id), direct[0].serialize(layer_message(circle_id, event))

    def publish(self, events: list[CircleEvent]) -> None:
        """Send `events` to their circles' groups; returns once handed over (embedded) or sent."""
        if not events:
            return
        bound = self.bound
        if bound is not None and not bound.is_closed():
            asyncio.run_coroutine_threadsafe(publish_all(events), bound)
            return
        direct = self.direct()
        if direct is not None:
            try:
                with direct[1].pipeline(transaction=False) as pipe:
                    for circle_id, event in events:
                        message = direct[0].serialize(layer_message(circle_id, event))
                        pipe.publish(group_channel(circle_id), message)
                    pipe.execute()
            except (redis.RedisError, OSError):  # as the layer's failures: logged, not raised
                logger.exception(
                    "could not publish the change of job(s) %s", [e["job_id"] for _, e in events]
                )
            return
        with self.lock:  # one loop per process, used by one thread at a time
            if self.own is None:
                self.own = asyncio.new_event_loop()
            self.own.run_until_complete(publish_all(events))


publisher = SyncPublisher()


def bind_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Embedded mode: events published from threads go through `loop` (the in-memory layer's)."""
    publisher.bound = loop


def job_object(record: JobRecord, circle_key: str) -> dict[str, Any]:
    """The job object of the wire (docs/PROTOCOL.md, "Jobs")."""
    return {
        "id": str(record.id),
        "caller_id": record.caller_id,
        "context_id": circle_key,
        "script": record.script,
        "timeout": record.timeout_seconds,
        "env_vars": record.env_vars,
        "prerequisites": record.prerequisites,
        "status": record.status,
        "output": record.output,
        "value": record.value,
        "error": record.error,
        "logs_size": record.logs_size,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
        "started_at": iso(record.started_at),
        "finished_at": iso(record.finished_at),
        "elapsed_ms": record.elapsed_ms,
    }
