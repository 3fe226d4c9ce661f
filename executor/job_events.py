"""A job's changes, pushed to its circle's channel-layer group once committed.

Every status change becomes one event (`event_of`): `{job_id, caller_id, status, revision,
updated_at}`, with `output`, `value` and `error` when the status is final. It goes to the group
`circle.<id>.jobs` as a `subscription.event` message of topic `jobs`; the WebSocket face's
subscriptions (`circles.subscriptions`) turn it into notifications. With channels-redis the
group reaches every ASGI process; embedded, the in-memory layer lives on the ASGI process's
event loop, so a thread of the in-process executor hands its events to that loop (`bind_loop`).
"""

import asyncio
import logging
import threading
from collections.abc import Iterable
from typing import Any

from channels.layers import get_channel_layer

from circles.changes import iso
from executor.job_rules import FINAL
from executor.models import JobRecord

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


def circle_event(record: JobRecord) -> CircleEvent:
    """`event_of(record)` with the circle it is published to."""
    return record.circle_id, event_of(record)


def layer_message(event: Event) -> dict[str, Any]:
    """The channel-layer message carrying `event`."""
    return {"type": EVENT_TYPE, "topic": TOPIC, "event": event}


async def publish_all(events: Iterable[CircleEvent]) -> None:
    """Send `events` to their circles' groups, in order; a layer failure is logged."""
    layer = get_channel_layer()
    if layer is None:  # the settings always configure one
        raise RuntimeError("no channel layer is configured")
    for circle_id, event in events:
        try:
            await layer.group_send(group_name(circle_id), layer_message(event))
        except Exception:
            logger.exception("could not publish job %s's change", event["job_id"])


class SyncPublisher:
    """Publishing from threads: onto the ASGI loop when one is bound (embedded), else on a loop of its own."""

    def __init__(self) -> None:
        self.bound: asyncio.AbstractEventLoop | None = None
        self.own: asyncio.AbstractEventLoop | None = None
        self.lock = threading.Lock()

    def publish(self, events: list[CircleEvent]) -> None:
        """Send `events` to their circles' groups; returns once handed over (embedded) or sent."""
        if not events:
            return
        bound = self.bound
        if bound is not None and not bound.is_closed():
            asyncio.run_coroutine_threadsafe(publish_all(events), bound)
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
