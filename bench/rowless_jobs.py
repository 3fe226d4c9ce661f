"""The jobs' rows held in memory, for `bench.job_costs --rowless`: what a job costs without its database.

Installed by `bench.rowless_settings` (never by the project's settings): at start-up it replaces
the four statements a trivial job makes (`executor.job_rows`: `create_job`'s INSERT,
`start_job`'s UPDATE, the slot's `started` and final UPDATEs) by dictionary operations in the
process that makes them. Everything else runs as shipped: the WebSocket frames, the JSON-RPC
methods, the threads, the hand-over through the jobs' stream, the events through Redis and the
hub, the run on the job engine. The throughput it allows is the ceiling of the jobs' protocol
on the machine, with a database that costs nothing. Only create, start and the notifications
work (nothing reads the rows back).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from django.apps import AppConfig

_created: dict[str, Any] = {}  # job id -> its record, from create_job until start_job


def insert_created(record: Any) -> Any:
    _created[str(record.id)] = record
    return record


def dispatch_created(
    job_id: str, circle_id: int, caller_id: str | None, max_active: int, run_id: Any, now: datetime
) -> Any:
    record = _created.pop(job_id, None)
    if record is None:
        return None
    record.status, record.run_id, record.revision, record.updated_at = "dispatched", run_id, 2, now
    return record


def mark_started(job_id: str, run_id: str, now: datetime) -> tuple[int, datetime]:
    return 3, now


def mark_ended(job_id: str, run_id: str, fields: dict[str, Any]) -> tuple[int, bool]:
    return 4, False


class RowlessJobs(AppConfig):
    """Swaps `executor.job_rows`' statements for the functions above once the apps are loaded."""

    name = "bench"
    label = "bench_rowless_jobs"
    path = os.path.dirname(__file__)

    def ready(self) -> None:
        from executor import job_rows

        for replacement in (insert_created, dispatch_created, mark_started, mark_ended):
            setattr(job_rows, replacement.__name__, replacement)
