"""The job function: run one job's script in one transaction and say how it went.

Workers (`executor.worker`) and the in-process executor (`executor.local`) both call `run_job`,
so a script behaves the same whichever runs it; each then answers and saves the run's row
(`RunReport.run_row`). The outcome is plain data, ready for the channel layer:
`{"run_id", "ok": True, "result": {output, value, logs, run_id, elapsed_ms}}` or
`{"run_id", "ok": False, "error": {kind, message, line, column}}`.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import rhai
from django.conf import settings

from executor.applied import AlreadyApplied, record_applied, recorded_outcome
from executor.caps import ResultTooLarge, check_answer, cut_logs, cut_text, cut_value
from executor.dsl import RunContext, running
from executor.engine import shared_engine
from executor.jobs import Job
from executor.models import ScriptRun
from executor.values import NotJsonSafe, to_json

logger = logging.getLogger("executor.runner")


def _when(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def script_error(
    kind: str, message: str, line: int | None = None, column: int | None = None
) -> dict[str, Any]:
    """The `{kind, message, line, column}` of a failed run, as clients see it."""
    return {"kind": kind, "message": message, "line": line, "column": column}


def server_fault() -> dict[str, Any]:
    """The error of a run that failed inside the server rather than in its script."""
    return script_error("host", "the run failed inside the server; nothing it wrote was kept")


def failed(job: Job, error: dict[str, Any]) -> dict[str, Any]:
    """The outcome of a run that failed (or never ran)."""
    return {"run_id": job.run_id, "ok": False, "error": error}


def should_record(job: Job, ok: bool) -> bool:
    """Whether CIRCLES_RECORD_RUNS keeps this run: `all`, `errors` (failures), `webhooks` (+ failures)."""
    policy = settings.CIRCLES_RECORD_RUNS
    return policy == "all" or not ok or (policy == "webhooks" and job.source.startswith("webhook:"))


@dataclass(slots=True)
class RunReport:
    """How a job's run went: the outcome for whoever waits, and what its ScriptRun row will say.

    `run_row` is the one way to a ScriptRun row; callers save it (`executor.run_rows.save_runs`)
    after answering, at once or together with others.
    """

    job: Job
    outcome: dict[str, Any]
    status: str
    row_fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def unrun(cls, job: Job, status: str, error: dict[str, Any]) -> "RunReport":
        """The report of a job that ends with `error` without its script running to the end."""
        return cls(job, failed(job, error), status, {"error": error})

    def run_row(self, *, worker: str = "", attempts: int = 1) -> ScriptRun | None:
        """The job's ScriptRun row, unsaved, or None when the recording policy does not keep it."""
        job = self.job
        if not should_record(job, self.status == ScriptRun.Status.SUCCEEDED):
            return None
        fields = dict(self.row_fields)
        error = fields.pop("error", None) or {}
        cap = settings.CIRCLES_RUN_RECORD_MAX_BYTES
        if "output" in fields:
            fields["output"] = cut_text(fields["output"], cap)
        if "value" in fields:
            fields["value"] = cut_value(fields["value"], cap)
        if "logs" in fields:
            fields["logs"] = cut_logs(fields["logs"], cap)
        return ScriptRun(
            id=job.run_id,
            circle_id=job.circle_id,
            caller_id=job.caller_id,
            caller_role=job.caller_role,
            source=job.source,
            script=cut_text(job.script, cap),
            status=self.status,
            error_kind=error.get("kind") or "",
            error_message=error.get("message") or "",
            error_line=error.get("line"),
            error_column=error.get("column"),
            attempts=attempts,
            worker=worker,
            queued_at=_when(job.queued_at),
            finished_at=datetime.now(UTC),
            **fields,
        )


def warn_if_left_behind(job: Job, before: int) -> None:
    """Log a run that left memory behind (reference cycles; docs/SCRIPTING.md)."""
    grown = rhai.Engine.left_behind_bytes() - before
    if grown > 0:
        logger.warning(
            "run %s in circle %s left %d bytes behind (closures capturing themselves); %d in all",
            job.run_id,
            job.circle_key[:16],
            grown,
            before + grown,
        )


def run_job(job: Job, cancel: rhai.CancelToken | None = None, *, redelivered: bool = False) -> RunReport:
    """Run `job` (unless its deadline passed) in one database transaction; nothing is recorded yet.

    `cancel`, when given, stops the run (kind `cancelled`, its writes rolled back) once another
    thread calls its `cancel()`: the caller went away. A job that may have run before
    (`redelivered`, or any webhook event's job) first looks for the mark its earlier run left
    (`executor.applied`) and answers from it instead of running again.

    Callers answer first and save the run's row after (`RunReport.run_row`): the row is for
    operators, the caller should not wait for it.
    """
    if redelivered or job.event_id is not None:
        recorded = recorded_outcome(job)
        if recorded is not None:
            return replayed(job, recorded)
    remaining = job.remaining_ms()
    if remaining <= 0:
        error = script_error("timeout", "the deadline passed before the script ran")
        return RunReport.unrun(job, ScriptRun.Status.EXPIRED, error)
    constants: dict[str, Any] = {
        "CALLER_ID": job.caller_id,
        "CONTEXT_ID": job.circle_key,
        "CALLER_ROLE": job.caller_role,
    }
    if job.event is not None:
        constants["EVENT"] = job.event  # webhook runs: the verified, typed payload
    started_at = datetime.now(UTC)
    left_behind = rhai.Engine.left_behind_bytes()
    try:
        with running(RunContext.for_job(job)):
            result = shared_engine().run(
                job.script, constants, timeout_ms=min(job.timeout_ms, remaining), cancel=cancel
            )
            value = to_json(result.value)
            # Inside the run's transaction: an answer too big to send rolls the run back.
            check_answer(result.output, value, settings.CIRCLES_RESULT_MAX_BYTES)
            answer = {
                "output": result.output,
                "value": value,
                "logs": result.logs,
                "run_id": job.run_id,
                "elapsed_ms": round(result.elapsed_ms, 3),
            }
            record_applied(job, answer)  # one commit for the writes and the mark
    except AlreadyApplied:
        logger.info("run %s: another delivery of its job committed first; answering from it", job.run_id)
        return replayed(job, recorded_outcome(job))
    except rhai.RhaiError as exc:
        error = exc.to_dict()
    except NotJsonSafe as exc:
        error = script_error("runtime", f"the script's value {exc}")
    except ResultTooLarge as exc:
        error = script_error("result_size", str(exc))
    except Exception:  # the server's fault (e.g. the commit failed): an answer, not a dead worker
        logger.exception("run %s in circle %s failed inside the server", job.run_id, job.circle_key[:16])
        error = server_fault()
    else:
        warn_if_left_behind(job, left_behind)
        row = {
            "started_at": started_at,
            "output": result.output,
            "value": value,
            "logs": result.logs,
            "operations": result.operations,
            "elapsed_ms": result.elapsed_ms,
        }
        return RunReport(
            job, {"run_id": job.run_id, "ok": True, "result": answer}, ScriptRun.Status.SUCCEEDED, row
        )
    logger.warning("run %s in circle %s failed: %s", job.run_id, job.circle_key[:16], error)
    warn_if_left_behind(job, left_behind)
    return RunReport(
        job, failed(job, error), ScriptRun.Status.FAILED, {"started_at": started_at, "error": error}
    )


def replayed(job: Job, outcome: dict[str, Any] | None) -> RunReport:
    """The report of a job an earlier delivery applied: its answer again, nothing run."""
    if outcome is None:  # the other delivery's row vanished (pruned in between): nothing is known
        error = script_error("host", "another delivery of this job applied it; its answer is gone")
        return RunReport.unrun(job, ScriptRun.Status.FAILED, error)
    result = outcome["result"]
    row = {"output": result.get("output", ""), "value": result.get("value"), "logs": result.get("logs", [])}
    return RunReport(job, outcome, ScriptRun.Status.SUCCEEDED, row)
