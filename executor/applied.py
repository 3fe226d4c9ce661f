"""Exactly-once effects: a run that wrote records its job beside its writes, in one commit.

A job can be delivered again after its run committed: its worker was killed between the commit
and the acknowledgement, Redis restarted and lost the acknowledgement, another worker claimed it
after an idle timeout, or a webhook event was queued again after its lease ran out. Such a
delivery must not apply the writes twice (a script adding to a balance would credit it twice).

So a run that wrote inserts an `AppliedRun` under its job's key (`applied_key`) in its own
transaction, just before the commit. A later delivery of the same job finds the row and answers
with what the first run answered (`recorded_outcome`), without running. Two deliveries running
at the same time cannot both commit: the second insert waits for the first transaction (its
unique key) and then fails, so the second run rolls back and answers from the first's row.
Runs that only read leave no row: running them again changes nothing.
"""

from typing import Any

import orjson
from django.db import IntegrityError

from executor.dsl import run_has_written
from executor.jobs import Job
from executor.json_nul import without_nul
from executor.models import AppliedRun


class AlreadyApplied(Exception):
    """Another delivery of this job committed first; this run must roll back."""


def applied_key(job: Job) -> str:
    """The key a job's effects are recorded under: its webhook event's, else its own run's."""
    if job.event_id is not None:
        # An event re-queued after its lease gets a new run id: it is still the same event.
        return f"event:{job.event_id}"
    return f"run:{job.run_id}"


def record_applied(job: Job, answer: dict[str, Any]) -> None:
    """Inside the run's transaction: record that `job` applied its writes and answered `answer`.

    Does nothing for a run that wrote nothing. Raises AlreadyApplied when another delivery of
    the job committed first.
    """
    if not run_has_written():
        return
    key = applied_key(job)
    text = orjson.dumps(answer).decode()
    cleaned = without_nul(text)  # jsonb holds no NUL
    kept = answer if cleaned is text else orjson.loads(cleaned)
    try:
        AppliedRun.objects.create(key=key, circle_id=job.circle_id, run_id=job.run_id, outcome=kept)
    except IntegrityError as exc:
        raise AlreadyApplied(key) from exc


def recorded_outcome(job: Job) -> dict[str, Any] | None:
    """The outcome of the delivery of `job` that applied it, as this delivery's; None if none did."""
    row = AppliedRun.objects.filter(key=applied_key(job)).values_list("outcome", flat=True).first()
    if row is None:
        return None
    return {"run_id": job.run_id, "ok": True, "result": {**row, "run_id": job.run_id}}


def forget_events(event_ids: list[int]) -> None:
    """Let these webhook events apply again (an operator's reprocess is a deliberate new run)."""
    AppliedRun.objects.filter(key__in=[f"event:{event_id}" for event_id in event_ids]).delete()
