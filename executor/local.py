"""The in-process executor: this process's threads run jobs when no worker reads a queue.

Embedded mode (no REDIS_URL) hands both kinds of job here: a `play` (`circles.play`) and a
webhook event's run (`webhooks.processing.submit`). One pool of CIRCLES_LOCAL_EXECUTOR_THREADS
threads runs each with `executor.runner.run_job` and finishes it as a worker does
(`executor.worker.Worker.finish`): a webhook event's ScriptRun row is saved before its hooks
run (the event links to it); any other job is answered first and its row handed to this
process's `executor.row_saver` thread, so the pool thread is free for the next run at once.
"""

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import rhai
from django.conf import settings
from django.db import close_old_connections

from executor import hooks
from executor.jobs import Job
from executor.models import ScriptRun
from executor.row_saver import RowSaver
from executor.run_rows import save_runs
from executor.runner import RunReport, run_job, server_fault

logger = logging.getLogger("executor.local")

WORKER_NAME = "in-process"  # what a ScriptRun row says ran it
Answer = Callable[[dict[str, Any]], None]  # called on the pool thread with the job's outcome


def _nobody(outcome: dict[str, Any]) -> None:
    """The answer of a job nobody waits for (a webhook event's: its hooks record the outcome)."""


def _nothing() -> None:
    """No clean-up after the run."""


@dataclass(frozen=True, slots=True)
class LocalRun:
    """A job handed to the pool, so its caller can stop it."""

    future: Future
    cancel_token: rhai.CancelToken

    def stop(self) -> bool:
        """Withdraw the run if it has not started (True), else cancel its token (False).

        A withdrawn run never reaches its thread, so its `done` is never called; a cancelled
        one ends on its thread (kind `cancelled`, its writes rolled back), which calls it.
        """
        if self.future.cancel():
            return True
        self.cancel_token.cancel()
        return False


class LocalExecutor:
    """A pool of threads running jobs in this process (the `rhai` engine is shared and thread-safe)."""

    def __init__(self, threads: int) -> None:
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="rhai")

    def submit(self, job: Job, answer: Answer = _nobody, done: Callable[[], None] = _nothing) -> LocalRun:
        """Queue `job` for a thread: `answer` gets its outcome, then `done` is called once it is over."""
        cancel_token = rhai.CancelToken()
        return LocalRun(self.pool.submit(_run, job, cancel_token, answer, done), cancel_token)


def _run(job: Job, cancel_token: rhai.CancelToken, answer: Answer, done: Callable[[], None]) -> None:
    """On a pool thread: run the job, finish it, then `done` (always: a caller waits on it)."""
    close_old_connections()
    try:
        try:
            report = run_job(job, cancel=cancel_token)
        except Exception:  # the server's fault: an answer, not a request left to its deadline
            logger.exception("in-process run %s failed", job.run_id)
            report = RunReport.unrun(job, ScriptRun.Status.FAILED, server_fault())
        finish(report, answer)
    finally:
        close_old_connections()
        done()


def finish(report: RunReport, answer: Answer) -> None:
    """Save the row, then run the hooks (a webhook event's job); or answer, then have the row saved
    (by the row saver's thread: the caller's next play must not wait for the save)."""
    job, outcome = report.job, report.outcome
    if job.event_id is not None:
        _save(report)
        hooks.job_finished(job, outcome)
    else:
        answer(outcome)
        try:
            row = report.run_row(worker=WORKER_NAME)
        except Exception:  # the row is for operators: losing it must not lose the run's end
            logger.exception("could not make the row of in-process run %s", job.run_id)
            return
        if row is not None:
            row_saver().save([row])


def _save(report: RunReport) -> None:
    try:
        save_runs([report.run_row(worker=WORKER_NAME)])
    except Exception:  # the row is for operators: losing it must not lose the answer or the hooks
        logger.exception("could not save the row of in-process run %s", report.job.run_id)


@cache
def row_saver() -> RowSaver:
    """This process's saver of in-process runs' rows, started on first use."""
    saver = RowSaver(WORKER_NAME)
    saver.start()
    return saver


@cache
def local_executor() -> LocalExecutor:
    """This process's in-process executor, started on first use."""
    return LocalExecutor(settings.CIRCLES_LOCAL_EXECUTOR_THREADS)
