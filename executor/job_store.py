"""The jobs' lifecycle on their rows: create, start, read, list, stop, delete, clear (synchronous).

Every function that changes a job commits its change and returns the events to publish
(`executor.job_events.event_of`) and, for `start`/`release_dependents`, the jobs to hand to the
executor (`executor.job_dispatch`): callers publish and dispatch only after the commit. A
caller sees only its own jobs (another caller's is `JobNotFound`, as if it did not exist);
`Viewer.sees_all` (the owner, an admin) sees every job of the circle.

A started job with prerequisites is `dispatched` with no `run_id` until every prerequisite has
`finished` (`release_dependents`, called after each job ends, hands it over then), or `error`
kind `prerequisite` when one did not. Reading a prerequisite's status and setting its final
status lock the same row, so a job started while its prerequisite ends is never left waiting.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from executor import job_rows
from executor.job_events import CircleEvent, circle_event
from executor.job_rules import (
    ACTIVE,
    CREATED,
    DISPATCHED,
    ERROR,
    FINAL,
    FINISHED,
    STARTED,
    InvalidJobParams,
    JobLimits,
    JobNotFound,
    JobSpec,
    TooManyActiveJobs,
    WrongJobState,
    parse_job_id,
    prerequisite_failed,
    stopped_error,
)
from executor.models import JobRecord

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who calls: the circle, the signed-in key and its role, and whether it sees every job."""

    circle_id: int
    caller_id: str
    caller_role: str
    sees_all: bool = False


@dataclass(slots=True)
class Change:
    """What a call changed: events to publish, jobs to hand to the executor, once committed."""

    events: list[CircleEvent] = field(default_factory=list)
    to_dispatch: list[JobRecord] = field(default_factory=list)

    def add(self, other: "Change") -> None:
        """Fold another call's change into this one."""
        self.events += other.events
        self.to_dispatch += other.to_dispatch


def _touch(record: JobRecord, now: datetime | None = None) -> None:
    record.revision += 1
    record.updated_at = now or timezone.now()


def _visible(viewer: Viewer, for_update: bool = False) -> QuerySet[JobRecord]:
    rows = JobRecord.objects.filter(circle_id=viewer.circle_id)
    if not viewer.sees_all:
        rows = rows.filter(caller_id=viewer.caller_id)
    return rows.select_for_update() if for_update else rows


def get(viewer: Viewer, job_id: str, *, for_update: bool = False) -> JobRecord:
    """The job `job_id` as `viewer` may see it; JobNotFound otherwise."""
    canonical = parse_job_id(job_id)
    record = _visible(viewer, for_update).filter(id=canonical).first() if canonical else None
    if record is None:
        raise JobNotFound(job_id)
    return record


def create(viewer: Viewer, spec: JobSpec) -> JobRecord:
    """A new `created` job of `viewer`'s; its prerequisites must be the caller's own jobs in this circle."""
    if spec.prerequisites:
        prerequisites = JobRecord.objects.filter(
            circle_id=viewer.circle_id, caller_id=viewer.caller_id, id__in=spec.prerequisites
        )
        own = set(prerequisites.values_list("id", flat=True))
        for job_id in spec.prerequisites:
            if uuid.UUID(job_id) not in own:
                raise InvalidJobParams("prerequisites", f"{job_id} is not one of your jobs in this circle")
        # Before the dependent exists: a prerequisite whose end sees the flag unset ended before
        # this job can start, and `start` then finds it final (`_readiness`).
        prerequisites.update(has_dependents=True)
    now = timezone.now()
    return job_rows.insert_created(
        JobRecord(
            circle_id=viewer.circle_id,
            caller_id=viewer.caller_id,
            caller_role=viewer.caller_role,
            script=spec.script,
            timeout_seconds=spec.timeout_seconds,
            env_vars=spec.env_vars,
            prerequisites=[str(uuid.UUID(job_id)) for job_id in spec.prerequisites],
            created_at=now,
            updated_at=now,
        )
    )


def _readiness(record: JobRecord) -> tuple[bool, str | None]:
    """(every prerequisite finished, the first that failed or vanished), the prerequisites locked."""
    if not record.prerequisites:
        return True, None
    statuses = dict(
        JobRecord.objects.select_for_update().filter(id__in=record.prerequisites).values_list("id", "status")
    )
    for job_id in record.prerequisites:
        status = statuses.get(uuid.UUID(job_id))
        if status is None or status == ERROR:
            return False, job_id
    return all(status == FINISHED for status in statuses.values()), None


def _end(record: JobRecord, status: str, error: dict | None, now: datetime | None = None) -> None:
    now = now or timezone.now()
    record.status, record.error, record.finished_at = status, error, now
    if record.started_at is not None:
        record.elapsed_ms = int((now - record.started_at).total_seconds() * 1000)
    _touch(record, now)


def start(viewer: Viewer, job_id: str, limits: JobLimits) -> Change:
    """`created` -> `dispatched`: handed over now, or waiting for its prerequisites (or error at once).

    A job without prerequisites whose caller is under its bound is one conditional UPDATE
    (`job_rows.dispatch_created`); anything else (and every refusal) takes the locked read."""
    canonical = parse_job_id(job_id)
    if canonical is not None:
        caller = None if viewer.sees_all else viewer.caller_id
        record = job_rows.dispatch_created(
            canonical, viewer.circle_id, caller, limits.max_active_per_caller, uuid.uuid4(), timezone.now()
        )
        if record is not None:
            return Change(events=[circle_event(record)], to_dispatch=[record])
    with transaction.atomic():
        record = get(viewer, job_id, for_update=True)
        if record.status != CREATED:
            raise WrongJobState(record.status)
        active = JobRecord.objects.filter(
            circle_id=record.circle_id, caller_id=record.caller_id, status__in=ACTIVE
        ).count()
        if active >= limits.max_active_per_caller:
            raise TooManyActiveJobs()
        return _dispatch_if_ready(record, first=True)


def _dispatch_if_ready(record: JobRecord, *, first: bool) -> Change:
    """Inside a transaction holding `record`: hand it over, fail it, or leave it waiting."""
    change = Change()
    ready, failed = _readiness(record)
    if failed is not None:
        _end(record, ERROR, prerequisite_failed(failed))
    elif ready:
        record.status, record.run_id = DISPATCHED, uuid.uuid4()
        _touch(record)
        change.to_dispatch.append(record)
    elif first:
        record.status = DISPATCHED  # waiting: no run id until its prerequisites finished
        _touch(record)
    else:
        return change
    record.save()
    change.events.append(circle_event(record))
    return change


def undispatch(record: JobRecord, error: dict) -> CircleEvent | None:
    """A job the executor could not take (the queue full or away): it ends `error` with `error`."""
    with transaction.atomic():
        current = JobRecord.objects.select_for_update().filter(id=record.id, run_id=record.run_id).first()
        if current is None or current.status != DISPATCHED:
            return None
        _end(current, ERROR, error)
        current.save()
        return circle_event(current)


def release_dependents(circle_id: int, ended: list[str]) -> Change:
    """After jobs `ended` (finished, failed, or deleted): hand over or fail the jobs waiting on them."""
    change = Change()
    ended_ids = {str(job_id) for job_id in ended}
    waiting = JobRecord.objects.filter(circle_id=circle_id, status=DISPATCHED, run_id__isnull=True).exclude(
        prerequisites=[]
    )
    for candidate in waiting.values_list("id", "prerequisites"):
        if not ended_ids.intersection(candidate[1]):
            continue
        with transaction.atomic():
            record = JobRecord.objects.select_for_update().filter(id=candidate[0]).first()
            if record is None or record.status != DISPATCHED or record.run_id is not None:
                continue
            step = _dispatch_if_ready(record, first=False)
        change.add(step)
        if any(event["status"] == ERROR for _, event in step.events):
            change.add(release_dependents(circle_id, [str(record.id)]))
    return change


def rehand_released(circle_id: int, ended_job_id: str) -> Change:
    """The dependents of `ended_job_id` that hold a run but never started, handed over again.

    A worker that ended a job releases its dependents (each `dispatched` with a run id) before it
    hands their runs over; dying between the two left them `dispatched` for ever. Its entry's
    redelivery calls this: each such dependent gets a fresh run id, by a conditional UPDATE (one
    that started meanwhile keeps its run), and the fresh run is handed over. An old run that did
    reach the executor no longer matches its row and is dropped unrun, so the job runs once. The
    status does not change: no event."""
    change = Change()
    unstarted = JobRecord.objects.filter(
        circle_id=circle_id, status=DISPATCHED, run_id__isnull=False, started_at__isnull=True
    )
    for record in unstarted.exclude(prerequisites=[]):
        if ended_job_id not in record.prerequisites:
            continue
        fresh = uuid.uuid4()
        if unstarted.filter(id=record.id, run_id=record.run_id).update(run_id=fresh):
            record.run_id = fresh
            change.to_dispatch.append(record)
    return change


def list_jobs(
    viewer: Viewer, *, status: str | None = None, limit: int | None = None, before: str | None = None
) -> list[JobRecord]:
    """`viewer`'s jobs (every job of the circle when it sees all), newest first, before cursor `before`."""
    rows = _visible(viewer)
    if status is not None:
        rows = rows.filter(status=status)
    if before is not None:
        cursor = get(viewer, before)
        rows = rows.filter(
            Q(created_at__lt=cursor.created_at) | Q(created_at=cursor.created_at, id__lt=cursor.id)
        )
    count = DEFAULT_LIST_LIMIT if limit is None else max(1, min(limit, MAX_LIST_LIMIT))
    return list(rows.order_by("-created_at", "-id")[:count])


@dataclass(frozen=True, slots=True)
class Stopped:
    """A stop: the change to publish, and the run to interrupt (None: it never started)."""

    change: Change
    run_id: str | None


def running_run(viewer: Viewer, job_id: str) -> tuple[JobRecord, str | None]:
    """The job about to be stopped (WrongJobState when it already ended) and its run in hand, if started."""
    record = get(viewer, job_id)
    if record.status in FINAL:
        raise WrongJobState(record.status)
    return record, str(record.run_id) if record.status == STARTED and record.run_id else None


def stop(viewer: Viewer, job_id: str) -> Stopped:
    """End the job `error` kind `stopped` (a job not yet run never runs); WrongJobState once finished."""
    with transaction.atomic():
        record = get(viewer, job_id, for_update=True)
        if record.status in FINAL:
            if record.status == ERROR and (record.error or {}).get("kind") == "stopped":
                return Stopped(Change(), None)  # its run saw the stop first
            raise WrongJobState(record.status)
        run_id = str(record.run_id) if record.status == STARTED and record.run_id else None
        record.stop_requested = True
        _end(record, ERROR, stopped_error())
        record.save()
    change = Change(events=[circle_event(record)])
    change.add(release_dependents(record.circle_id, [str(record.id)]))
    return Stopped(change, run_id)


def delete(viewer: Viewer, job_id: str) -> Change:
    """Delete a job that is not dispatched or started (WrongJobState for those: stop it first)."""
    with transaction.atomic():
        record = get(viewer, job_id, for_update=True)
        if record.status in ACTIVE:
            raise WrongJobState(record.status)
        circle_id, deleted_id = record.circle_id, str(record.id)
        record.delete()
    return release_dependents(circle_id, [deleted_id])


def clear(viewer: Viewer) -> tuple[int, Change]:
    """Delete the viewer's jobs (the circle's when it sees all) that are not dispatched or started."""
    rows = _visible(viewer).exclude(status__in=ACTIVE)
    ids = [str(job_id) for job_id in rows.values_list("id", flat=True)]
    deleted, _ = JobRecord.objects.filter(id__in=ids).exclude(status__in=ACTIVE).delete()
    return deleted, release_dependents(viewer.circle_id, ids)


def prune(older_than_days: float) -> int:
    """Delete jobs that ended more than `older_than_days` days ago; how many went."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = JobRecord.objects.filter(status__in=FINAL, finished_at__lt=cutoff).delete()
    return deleted
