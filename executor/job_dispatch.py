"""Handing jobs to the executor, interrupting them, and settling what a change released.

With REDIS_URL a job run goes on the jobs' own stream (`CIRCLES_JOBS_STREAM`), which only the
workers' job slots read (`rhai_worker --job-slots`), so jobs never take the capacity `play`
runs on; a stop reaches the slot that holds the run through the cancel notices of that stream
(`executor.cancels`). Embedded, runs go to a pool of `CIRCLES_LOCAL_JOB_THREADS` threads of
their own beside the `play` pool, and a stop cancels the run's token directly. Either way a
run over its caller's or its circle's share of the job slots waits for a place
(`executor.job_shares`), its job `dispatched`.
"""

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import cache

import rhai
from django.conf import settings
from django.db import close_old_connections

from executor import job_store
from executor.cancels import cancel_channel, cancel_key
from executor.job_events import CircleEvent, publisher
from executor.job_runs import job_for, run_record
from executor.job_shares import JobShareLimits, LocalJobShares
from executor.job_store import Change
from executor.jobs import Job
from executor.models import JobRecord
from executor.queue import JobQueue, Publication, QueueConfig, QueueFull, QueueUnavailable
from executor.runner import script_error

logger = logging.getLogger("executor.job_dispatch")


def jobs_queue_config() -> QueueConfig:
    """The jobs' stream: the play queue's settings, on `CIRCLES_JOBS_STREAM`."""
    config = QueueConfig.from_settings()
    return replace(
        config, stream=settings.CIRCLES_JOBS_STREAM, dead_stream=settings.CIRCLES_JOBS_STREAM + ":dead"
    )


@cache
def _queue() -> JobQueue:
    return JobQueue(jobs_queue_config())


class LocalJobs:
    """Embedded mode: job runs on threads of their own, each stoppable by its job id."""

    def __init__(self, threads: int, limits: JobShareLimits) -> None:
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="rhai-job")
        self.shares = LocalJobShares(limits)
        self.tokens: dict[str, rhai.CancelToken] = {}
        self.lock = threading.Lock()

    def submit(self, job: Job) -> None:
        """Queue `job` for a job thread (once its shares have room for it)."""
        with self.lock:
            self.tokens[job.run_id] = rhai.CancelToken()
        if self.shares.take(job):
            self.pool.submit(self._run, job)

    def cancel(self, run_id: str) -> None:
        """Interrupt run `run_id` if it is running (a queued one finds its job stopped and never runs)."""
        with self.lock:
            token = self.tokens.get(run_id)
        if token is not None:
            token.cancel()

    def _run(self, job: Job) -> None:
        close_old_connections()
        try:
            with self.lock:
                token = self.tokens[job.run_id]
            settle(run_record(job, token), circle_key=job.circle_key)
        except Exception:  # the pool thread must live on; the job stays as it is for an operator
            logger.exception("in-process job %s failed", job.job_id)
        finally:
            with self.lock:
                self.tokens.pop(job.run_id, None)
            for ready in self.shares.give_back(job):
                self.pool.submit(self._run, ready)
            close_old_connections()


@cache
def local_jobs() -> LocalJobs:
    """This process's job threads (embedded mode), started on first use."""
    return LocalJobs(settings.CIRCLES_LOCAL_JOB_THREADS, JobShareLimits.from_settings())


def dispatch(
    records: list[JobRecord], circle_key: str | None = None, publications: Sequence[Publication] = ()
) -> list[CircleEvent]:
    """Hand each job's run in hand to the executor; the events of those it could not take.

    `circle_key`: the public key of the records' circle when the caller knows it (every change
    is of one circle), saving a read of the circle per record. `publications` (Redis only) go
    out with the first hand-over, in its round trip (`JobQueue.enqueue_job_run`)."""
    events = []
    for record in records:
        job = job_for(record, circle_key or record.circle.public_key)
        if not settings.REDIS_URL:
            local_jobs().submit(job)
            continue
        try:
            _queue().enqueue_job_run(job, JobShareLimits.from_settings(), publications)
        except (QueueFull, QueueUnavailable) as exc:
            logger.warning("job %s not queued: %s", record.id, exc)
            event = job_store.undispatch(record, script_error("host", f"the job queue refused it ({exc})"))
            if event is not None:
                events.append(event)
        publications = ()
    return events


def settle(change: Change, *, ride: bool = False, circle_key: str | None = None) -> Publication | None:
    """After a commit: publish `change`'s events, then hand over the jobs it released (from a thread).

    Events go first: a released job may start, and publish `started`, before a later publish of
    its `dispatched` would, which its subscribers would then drop as older. The events of jobs
    the executor refused come after. `circle_key`: the change's circle's key, when known
    (`dispatch`). With `ride` (a job slot, about to acknowledge its entry), a
    change of one event and nothing to hand over is not sent here but returned as the PUBLISH to
    send with the acknowledgement (`JobQueue.finish`): one round trip for both, as a `play`'s
    answer goes. None: everything was published already.
    """
    if ride and len(change.events) == 1 and not change.to_dispatch:
        publication = publisher.publication(change.events[0])
        if publication is not None:
            return publication
    if change.to_dispatch and settings.REDIS_URL:
        # Published by the first hand-over's script, before it adds the run: one round trip fewer
        # on `start_job`'s path, the order the same.
        publications = [p for p in map(publisher.publication, change.events) if p is not None]
        if len(publications) == len(change.events):
            publisher.publish(dispatch(change.to_dispatch, circle_key, publications))
            return None
    publisher.publish(list(change.events))
    if change.to_dispatch:
        publisher.publish(dispatch(change.to_dispatch, circle_key))
    return None


def interrupt(run_id: str) -> None:
    """Stop run `run_id` wherever it runs (embedded: its token; else a cancel notice on the jobs stream)."""
    if not settings.REDIS_URL:
        local_jobs().cancel(run_id)
        return
    stream = settings.CIRCLES_JOBS_STREAM
    ttl_ms = (settings.CIRCLES_JOBS_TIMEOUT_MAX_SECONDS + 60) * 1000
    with _queue().redis.pipeline(transaction=True) as pipe:
        pipe.set(cancel_key(stream, run_id), 1, px=ttl_ms)
        pipe.publish(cancel_channel(stream), run_id)
        pipe.execute()
