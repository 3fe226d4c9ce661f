"""Processing events: the job for an event, queueing it, recording how its run ended, retries.

Flow: the view inserts the event as `queued` (leased to one job run id) and calls `submit`;
a worker (or, without REDIS_URL, the in-process executor `executor.local`) runs the job with
`executor.runner.run_job` and saves its ScriptRun row, then its hook `job_finished`
(`CIRCLES_JOB_FINISHED_HOOKS`) writes the outcome to the event:
`processed`, or back to `received` with a retry time (backoff), or `failed` after
`CIRCLES_WEBHOOK_MAX_ATTEMPTS` runs. `sweep` (run periodically by every worker, and by a
timer thread in embedded mode) queues what is due: retries, events whose queueing failed
(503), and events whose lease ran out (their job was lost). Claims are single UPDATEs
conditioned on the row's state, so several workers sweeping at once never queue an event
twice; a job whose run id no longer matches the event's (superseded by a reprocess or a
lease expiry) does not touch it.
"""

import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from executor.applied import forget_events
from executor.dsl import SERVICE_ROLE
from executor.jobs import Job
from executor.local import local_executor
from executor.models import ScriptRun
from executor.queue import JobQueue, QueueConfig, QueueFull, QueueUnavailable
from executor.redis_clients import sync_client
from webhooks import metrics
from webhooks.models import WebhookEvent
from webhooks.providers import get_provider
from webhooks.recording import endpoint_config, new_run_id

logger = logging.getLogger("webhooks")

Status = WebhookEvent.Status
DUE = (Status.RECEIVED, Status.QUEUED)


def handler_script(circle_id: int, provider_name: str) -> str:
    """The circle's own handler for the provider, or the shipped default."""
    provider = get_provider(provider_name)
    if provider is None:
        raise LookupError(f"provider {provider_name!r} is no longer configured")
    config = endpoint_config(circle_id, provider)
    return (config.script if config else "") or provider.default_script


def webhook_job(
    *,
    event_id: int,
    circle_id: int,
    circle_key: str,
    provider: str,
    payload: dict[str, Any],
    script: str,
    run_id: str,
) -> Job:
    """The job running `script` for one event: caller = the provider, role service, EVENT = payload."""
    lease = settings.CIRCLES_WEBHOOK_LEASE_SECONDS
    return Job(
        circle_id=circle_id,
        circle_key=circle_key,
        caller_id=provider,
        caller_role=SERVICE_ROLE,
        source=f"webhook:{provider}",
        script=script,
        deadline=time.time() + lease,  # nobody waits on the answer: only a lost job expires
        timeout_ms=settings.CIRCLES_PLAY_TIMEOUT_MS,
        event_id=event_id,
        event=payload,
        run_id=run_id,
    )


# --- queueing ----------------------------------------------------------------------------------


@cache
def _queue() -> JobQueue:
    config = QueueConfig.from_settings()
    # Short timeouts: the view answers 503 quickly when Redis is away, rather than hanging.
    client = sync_client(config.url, timeout=2, connect_timeout=1)
    return JobQueue(config, client)


def submit(job: Job) -> None:
    """Queue `job` on Redis, or (embedded mode) hand it to this process's in-process executor.

    Raises QueueUnavailable or QueueFull when Redis cannot take it.
    """
    if not settings.REDIS_URL:
        local_executor().submit(job)  # its hooks (`job_finished` below) record the outcome
        return
    _queue().enqueue(job)


def release(event_id: int, run_id: str, reason: str, **fields: Any) -> None:
    """Queueing run `run_id` failed: put the event back to `received` for the sweep's next round."""
    WebhookEvent.objects.filter(id=event_id, run_id=run_id).update(
        status=Status.RECEIVED,
        next_attempt_at=timezone.now() + timedelta(seconds=settings.CIRCLES_WEBHOOK_SWEEP_SECONDS),
        error=reason,
        **fields,
    )


def requeue(event_id: int, *, now: datetime | None = None) -> bool:
    """Claim a due `received`/`queued` event for a new run and queue it; False when someone else did.

    Raises QueueUnavailable / QueueFull (the event is released back to `received`).
    """
    now = now or timezone.now()
    run_id = new_run_id()
    claimed = WebhookEvent.objects.filter(id=event_id, status__in=DUE, next_attempt_at__lte=now).update(
        status=Status.QUEUED,
        run_id=run_id,
        next_attempt_at=now + timedelta(seconds=settings.CIRCLES_WEBHOOK_LEASE_SECONDS),
    )
    if not claimed:
        return False
    event = WebhookEvent.objects.select_related("circle").get(id=event_id)
    try:
        job = webhook_job(
            event_id=event.id,
            circle_id=event.circle_id,
            circle_key=event.circle.public_key,
            provider=event.provider,
            payload=event.payload or {},
            script=handler_script(event.circle_id, event.provider),
            run_id=run_id,
        )
    except LookupError as exc:
        _finish(event.id, run_id, Status.FAILED, error=str(exc))
        return True
    try:
        submit(job)
    except (QueueUnavailable, QueueFull) as exc:
        release(event.id, run_id, f"queue unavailable: {exc}")
        raise
    return True


def sweep(limit: int = 100) -> int:
    """Queue every event that is due (retries, 503s, lost jobs); returns how many were queued."""
    now = timezone.now()
    due = list(
        WebhookEvent.objects.filter(status__in=DUE, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
    queued = 0
    for event_id in due:
        try:
            queued += requeue(event_id, now=now)
        except (QueueUnavailable, QueueFull) as exc:
            logger.warning("webhook sweep: queue unavailable (%s); %s events wait", exc, len(due) - queued)
            break
    if queued:
        logger.info("webhook sweep queued %s events", queued)
    return queued


def reprocess(event_ids: Iterable[int]) -> tuple[int, int]:
    """Run events again now (the admin action): attempts start over. Returns (queued, waiting).

    Rejected and duplicate rows are not events to run and are skipped. An event whose queueing
    fails stays `received` and the sweep queues it later (it counts as waiting). An event the
    periodic sweep claimed first, once it was due again, is queued all the same (it counts as
    queued).
    """
    now = timezone.now()
    ids = list(
        WebhookEvent.objects.filter(id__in=list(event_ids))
        .exclude(status__in=WebhookEvent.NOISE)
        .values_list("id", flat=True)
    )
    # A deliberate new run: the earlier run's effects must not stand in for it. Forgotten before
    # the events are due again, so that no run (this one's or the sweep's) can find them applied.
    forget_events(ids)
    WebhookEvent.objects.filter(id__in=ids).update(
        status=Status.RECEIVED, attempts=0, next_attempt_at=now, run_id=""
    )
    queued = waiting = 0
    for event_id in ids:
        try:
            requeue(event_id, now=now)  # False: the sweep claimed it first, and queued it
        except (QueueUnavailable, QueueFull):
            waiting += 1
        else:
            queued += 1
    return queued, waiting


# --- outcomes ----------------------------------------------------------------------------------


def retry_delay(attempts: int) -> float:
    """Seconds before retry number `attempts` (1-based): base * 2^(attempts-1), capped."""
    base = settings.CIRCLES_WEBHOOK_RETRY_BASE_SECONDS
    return min(base * 2 ** (attempts - 1), settings.CIRCLES_WEBHOOK_RETRY_MAX_SECONDS)


def describe_error(error: dict[str, Any]) -> str:
    """`kind: message (line L, column C)` for the event's error field."""
    text = f"{error.get('kind')}: {error.get('message')}"
    if error.get("line") is not None:
        text += f" (line {error['line']}, column {error.get('column')})"
    return text


def _finish(event_id: int, run_id: str, status: str, **fields: Any) -> int:
    return WebhookEvent.objects.filter(id=event_id, run_id=run_id).update(status=status, **fields)


def job_finished(job: Job, outcome: dict[str, Any], *, traceback: str = "") -> None:
    """Write a webhook job's outcome to its event (`executor.hooks` calls this after every run).

    A job that is no longer the event's current run (reprocessed, or re-queued after its lease
    ran out) changes nothing.
    """
    event_id = job.event_id
    if event_id is None:  # not a webhook event's job (`executor.hooks` passes only those)
        return
    row = WebhookEvent.objects.filter(id=event_id, run_id=job.run_id).values_list("attempts").first()
    if row is None:
        logger.info("run %s of webhook event %s was superseded", job.run_id, event_id)
        return
    attempts = row[0] + 1
    now = timezone.now()
    provider = job.source.removeprefix("webhook:")
    script_run = job.run_id if ScriptRun.objects.filter(id=job.run_id).exists() else None
    common = {"attempts": attempts, "script_run_id": script_run}
    if outcome["ok"]:
        _finish(
            event_id,
            job.run_id,
            Status.PROCESSED,
            processed_at=now,
            next_attempt_at=None,
            error="",
            traceback="",
            **common,
        )
        metrics.count_webhook_event(provider, "processed")
        return
    error = describe_error(outcome["error"])
    if attempts < settings.CIRCLES_WEBHOOK_MAX_ATTEMPTS:
        delay = retry_delay(attempts)
        logger.warning(
            "webhook event %s run %s failed (%s); retry in %.1fs", event_id, attempts, error, delay
        )
        _finish(
            event_id,
            job.run_id,
            Status.RECEIVED,
            next_attempt_at=now + timedelta(seconds=delay),
            error=error,
            traceback=traceback,
            **common,
        )
        metrics.count_webhook_event(provider, "retry")
    else:
        logger.warning("webhook event %s failed after %s runs: %s", event_id, attempts, error)
        _finish(
            event_id,
            job.run_id,
            Status.FAILED,
            next_attempt_at=None,
            processed_at=now,
            error=error,
            traceback=traceback,
            **common,
        )
        metrics.count_webhook_event(provider, "failed")


# --- embedded mode: the sweep on a timer thread ------------------------------------------------

_sweeper_lock = threading.Lock()
_sweeper: threading.Thread | None = None


def _sweep_forever() -> None:
    while True:
        time.sleep(settings.CIRCLES_WEBHOOK_SWEEP_SECONDS)
        close_old_connections()
        try:
            sweep()
        except Exception:
            logger.exception("webhook sweep failed")
        finally:
            close_old_connections()


def ensure_local_sweeper() -> None:
    """Embedded mode (no REDIS_URL): start this process's sweep thread once (workers sweep otherwise)."""
    global _sweeper
    if settings.REDIS_URL or not settings.CIRCLES_WEBHOOK_LOCAL_SWEEPER or _sweeper is not None:
        return
    with _sweeper_lock:
        if _sweeper is None:
            _sweeper = threading.Thread(target=_sweep_forever, name="webhook-sweep", daemon=True)
            _sweeper.start()
