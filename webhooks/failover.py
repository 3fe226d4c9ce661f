"""Webhook jobs a Redis failover may have lost, queued again from the database at once.

Redis replication is asynchronous: a job added to the master just before it died may never have
reached the replica the sentinels promote. Its event is `queued` in PostgreSQL (the database row
is the truth) and the lease would bring it back after `CIRCLES_WEBHOOK_LEASE_SECONDS` (15 min by
default); this brings it back within one sweep period of the failover.

Each worker, every `CIRCLES_WORKER_PERIODIC_SECONDS`, reads the master's replication id (`INFO
replication`, `master_replid`: a promoted replica takes a new one, and so does a Redis restarted
from its AOF) and swaps it into `<stream>:replid` with `SET ... GET`. The one worker whose swap
replaces another id (or finds none) makes every `queued` event due now, and the sweep that runs
next queues each one again under a new run id (one conditional UPDATE claims each, so several
workers never queue it twice). A job of the old run that did survive still runs: the event's
applied mark (`executor.applied`, keyed by the event) keeps the two runs from applying twice,
and only the newer run's outcome is written to the event.
"""

import logging
from functools import cache
from typing import cast

import redis
from django.conf import settings
from django.utils import timezone

from executor.redis_clients import sync_client
from webhooks.models import WebhookEvent

logger = logging.getLogger("webhooks.failover")


def replid_key() -> str:
    """The key holding the replication id of the master the workers last saw."""
    return f"{settings.CIRCLES_QUEUE_STREAM}:replid"


@cache
def _client() -> redis.Redis:
    return sync_client(timeout=2, connect_timeout=1)


def master_changed(client: redis.Redis) -> bool:
    """Whether the master's replication id differs from the one recorded (recording the new one).

    True for exactly one caller per change, however many workers ask at once.
    """
    replid = client.info("replication")["master_replid"]
    # SET … GET answers the old value, as bytes: the client does not decode responses.
    previous = cast(bytes | None, client.set(replid_key(), replid, get=True))
    return previous is None or previous.decode() != replid


def requeue_after_master_change() -> int:
    """A worker's periodic task: after a master change, make every `queued` event due now.

    Returns how many events were made due (0 when the master did not change, or without REDIS_URL).
    """
    if not settings.REDIS_URL or not master_changed(_client()):
        return 0
    queued = WebhookEvent.objects.filter(status=WebhookEvent.Status.QUEUED)
    due = queued.update(next_attempt_at=timezone.now())
    if due:
        logger.warning("new Redis master (or one that lost writes): %s queued webhook events due again", due)
    return due
