"""Running a job's script: one transaction, with the job's final status in the same commit.

A worker's job slot (`executor.job_worker`) and the in-process executor (`executor.job_dispatch`)
both call `run_record` for a job run taken from the jobs stream or the job pool. It marks the
job `started` (unless it was stopped, or another delivery ended it: then nothing runs), runs
the script on the jobs' engine with `ENV_VARS`, and sets `finished` inside the run's own
transaction, so a successful run's writes and its final status commit together: a delivery of
a job that already finished finds it final and does not run again. A failed or stopped run
rolls back and ends `error` in a transaction of its own, unless the job already ended (a stop
that came first). The `started` event is published at once; callers publish the returned
change (the end) and hand over the jobs it released.
"""

import logging
import time
from datetime import datetime
from typing import Any

import rhai
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from executor import job_rows, job_store
from executor.caps import ResultTooLarge, check_answer
from executor.dsl import RunContext, running
from executor.engine import job_engine
from executor.job_events import circle_event, publisher, run_event
from executor.job_logs import LiveLogs
from executor.job_rules import DISPATCHED, ERROR, FINISHED, STARTED, joined_logs, stopped_error
from executor.job_store import Change
from executor.jobs import Job
from executor.models import JobRecord
from executor.runner import script_error, server_fault
from executor.values import NotJsonSafe, to_json

logger = logging.getLogger("executor.job_runs")

QUEUE_SLACK_SECONDS = 86_400  # a job may wait this long in the queue (its deadline) before it runs
JOB_SOURCE = "job"


class Superseded(Exception):
    """The job ended another way while this run ran (stopped, or another delivery finished it)."""


def job_for(record: JobRecord, circle_key: str) -> Job:
    """The queue entry of `record`'s run in hand (`record.run_id`)."""
    return Job(
        circle_id=record.circle_id,
        circle_key=circle_key,
        caller_id=record.caller_id,
        caller_role=record.caller_role,
        source=JOB_SOURCE,
        script=record.script,
        deadline=time.time() + record.timeout_seconds + QUEUE_SLACK_SECONDS,
        timeout_ms=record.timeout_seconds * 1000,
        job_id=str(record.id),
        env_vars=dict(record.env_vars),
        run_id=str(record.run_id),
    )


def job_id_of(job: Job) -> str:
    """The id of the job record `job` runs (only job runs go on the jobs' stream)."""
    if job.job_id is None:
        raise ValueError(f"run {job.run_id} is not a job run")
    return job.job_id


def _ended_fields(started_at: datetime | None) -> dict[str, Any]:
    now = timezone.now()
    elapsed = int((now - started_at).total_seconds() * 1000) if started_at else None
    return {"finished_at": now, "updated_at": now, "elapsed_ms": elapsed}


def run_record(job: Job, cancel: rhai.CancelToken | None = None, *, deliveries: int = 1) -> Change:
    """Run job `job.job_id`'s run `job.run_id`, end it, and return what changed (not yet published).

    `deliveries` is the queue's count for this run (the row counts its own).
    """
    job_id = job_id_of(job)
    now = timezone.now()
    marked = job_rows.mark_started(job_id, job.run_id, now)
    if marked is None:  # stopped, deleted, or ended by another delivery: never run
        return _ended_before(job) if deliveries > 1 else Change()
    started_revision, started_at = marked
    # Now, not with the end: subscribers see it start.
    publisher.publish([(job.circle_id, run_event(job_id, job.caller_id, STARTED, started_revision, now))])
    constants = {
        "CALLER_ID": job.caller_id,
        "CONTEXT_ID": job.circle_key,
        "CALLER_ROLE": job.caller_role,
        "ENV_VARS": dict(job.env_vars or {}),
    }
    error = None
    ended_row: tuple[int, bool] | None = None  # (revision, has dependents) of the end written
    # Flushed by the process's flusher thread, outside the run's transaction; stopped once that
    # ended: a flush may wait on the locks the transaction holds (SQLite's write lock, the job's row).
    live = LiveLogs(job_id, job.run_id, settings.CIRCLES_JOBS_MAX_LOG_BYTES).start()
    try:
        with running(RunContext.for_job(job)):
            result = job_engine().run(
                job.script, constants, timeout_ms=job.timeout_ms, cancel=cancel, tap=live.tap
            )
            value = to_json(result.value)
            check_answer(result.output, value, settings.CIRCLES_RESULT_MAX_BYTES)
            logs = joined_logs(result.logs, settings.CIRCLES_JOBS_MAX_LOG_BYTES)  # as the flushes cut it
            # A run that wrote (or read) is in its transaction: its end commits with its writes. One
            # that never touched the database has nothing to commit with it: its end is one UPDATE
            # in autocommit, not BEGIN, UPDATE, COMMIT (on the finish -> notification path).
            ended = _ended_fields(started_at)
            final = {"status": FINISHED, "output": result.output, "value": value}
            ended_row = job_rows.mark_ended(
                job_id, job.run_id, {**final, "logs": logs, "logs_size": len(logs.encode()), **ended}
            )
            if ended_row is None:
                raise Superseded()
    except Superseded:
        logger.info("job %s ended another way while run %s ran: rolled back", job.job_id, job.run_id)
        return Change()
    except rhai.RhaiError as exc:
        error = exc.to_dict()
    except NotJsonSafe as exc:
        error = script_error("runtime", f"the script's value {exc}")
    except ResultTooLarge as exc:
        error = script_error("result_size", str(exc))
    except Exception:  # the server's fault (the commit failed): the job ends, the worker lives on
        logger.exception("job %s run %s failed inside the server", job.job_id, job.run_id)
        error = server_fault()
    finally:
        live.stop()
    if error is not None:
        if error.get("kind") == "cancelled":  # only a stop cancels a job's run
            error = stopped_error()
        logs = live.text()  # what it printed before it failed: the flushes' lines and the rest
        ended = _ended_fields(started_at)
        final = {"status": ERROR, "output": None, "value": None, "error": error}
        ended_row = job_rows.mark_ended(
            job_id,
            job.run_id,
            {"status": ERROR, "error": error, "logs": logs, "logs_size": len(logs.encode()), **ended},
        )
        if ended_row is None:
            _keep_logs_of_stopped(job, logs)
            return Change()  # a stop (or another delivery) ended it first
    assert ended_row is not None  # the end was written: by the run's commit, or just now
    revision, has_dependents = ended_row
    change = Change(
        events=[
            (
                job.circle_id,
                run_event(job_id, job.caller_id, revision=revision, updated_at=ended["updated_at"], **final),
            )
        ]
    )
    if has_dependents:  # a job named as nobody's prerequisite has nobody to release: no query
        change.add(job_store.release_dependents(job.circle_id, [job_id]))
    return change


def _ended_before(job: Job) -> Change:
    """A redelivered run whose job is already final: if this run ended it (its worker died after
    the commit, before the acknowledgement that publishes the end), the end's event again (from
    the row; a subscriber that had it drops it by its revision), the dependents released again
    (`release_dependents` only takes those still waiting), and those it released before its worker
    died handed over again (`job_store.rehand_released`); else nothing."""
    job_id = job_id_of(job)
    if not JobRecord.objects.filter(id=job_id, run_id=job.run_id, status__in=(FINISHED, ERROR)).exists():
        return Change()
    logger.info("job %s already ended by run %s: its end announced again", job_id, job.run_id)
    rehanded = job_store.rehand_released(job.circle_id, job_id)  # before: not those released now
    change = change_after_end(Change(), job_id)
    change.add(rehanded)
    return change


def _keep_logs_of_stopped(job: Job, logs: str) -> None:
    """A stop ended the job while it ran: its row gets every line the run printed, not only those flushed."""
    JobRecord.objects.filter(
        id=job_id_of(job), run_id=job.run_id, status=ERROR, error__kind="stopped"
    ).update(logs=logs, logs_size=len(logs.encode()))


def change_after_end(change: Change, job_id: str) -> Change:
    """Add the ended job's event (read from its row) and what its end released to `change`."""
    record = JobRecord.objects.filter(id=job_id).first()
    if record is None:
        return change
    change.events.append(circle_event(record))
    change.add(job_store.release_dependents(record.circle_id, [job_id]))
    return change


def end_dead(job: Job, deliveries: int) -> Change:
    """A job whose workers died `deliveries - 1` times running it: it ends `error` kind `host`."""
    deaths = deliveries - 1
    error = script_error("host", f"the job's worker died {deaths} times while running it; not run again")
    job_id = job_id_of(job)
    record = JobRecord.objects.filter(id=job_id, run_id=job.run_id).first()
    if record is None:
        return Change()
    changed = JobRecord.objects.filter(id=job_id, run_id=job.run_id, status__in=(STARTED, DISPATCHED)).update(
        status=ERROR, error=error, revision=F("revision") + 1, **_ended_fields(record.started_at)
    )
    return change_after_end(Change(), job_id) if changed else Change()
