"""One worker process: read jobs from the queue, run them, deliver the outcome, acknowledge.

It survives Redis going away (reconnects with backoff and carries on) and stops gracefully:
`stop()` (SIGTERM) lets the job in hand finish, be delivered and acknowledged, then exits.

A worker runs one script at a time, so it reads one entry at a time: an entry it read waits in
its hands behind the run in progress, however long that run is, while other workers may be idle
(docs/benchmarks/fairness.md). The ScriptRun rows of answered jobs are saved by a thread of
their own (`executor.row_saver`), so a save never holds the next job either.
"""

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence

import redis
import rhai
from django.conf import settings

from executor import change_feed, hooks, metrics
from executor.cancels import CancelWatcher
from executor.db_health import close_old_connections_lazily
from executor.delivery import ResultDelivery
from executor.heartbeat import Heartbeat
from executor.jobs import Job
from executor.models import ScriptRun
from executor.queue import JobQueue, QueueConfig, QueuedJob
from executor.row_saver import RowSaver
from executor.run_rows import save_runs
from executor.runner import RunReport, run_job, script_error

logger = logging.getLogger("executor.worker")

CLAIM_EVERY_SECONDS = 1.0
# Entries taken per read, and per claim of a dead worker's: as many as the worker has script
# threads (one). With 16, a worker that found a long run and a short one waiting read both and
# ran the short one after the long one (a member's `play("1")` answered after another member's
# 3 s run, the other worker idle meanwhile).
READ_BATCH = 1
MAX_BACKOFF_SECONDS = 1.0  # a failover is over in seconds: retry at least every second
# ScriptRun rows of answered jobs are held and saved together: when this many wait, when the
# oldest has waited this long, when the queue goes quiet, and when the worker stops. Saving
# 100 at a time rather than 500 halved the p99 at saturation (docs/benchmarks/play.md); the
# saves are now made on the worker's `RowSaver` thread, where they hold no job at all (a save of
# ~70 rows took 30-130 ms on the 2-core machine, and the victim's play of
# docs/benchmarks/fairness.md waited for it twice a second).
SAVE_RUNS_AT = 100
SAVE_RUNS_AFTER_SECONDS = 0.5
# An idle read returns the moment a job arrives, so the wait only bounds how long a SIGTERM waits
# for the loop to notice it (a deploy, or the ~150 worker stops of the test suite): 4 idle reads a
# second per worker cost Redis nothing that matters.
READ_BLOCK_MS = 250


class Worker:
    """Runs jobs until stopped."""

    read_batch = READ_BATCH  # entries taken per read, and per claim of a dead worker's

    def __init__(
        self, config: QueueConfig, *, name: str | None = None, block_ms: int = READ_BLOCK_MS
    ) -> None:
        self.config = config
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.block_ms = block_ms
        self.queue = JobQueue(config)
        self.delivery = ResultDelivery()
        self.stopping = False
        self.jobs_done = 0
        self.unsaved_runs: list[ScriptRun] = []
        self.unsaved_since = 0.0  # monotonic time the oldest held row was added
        self.heartbeat = Heartbeat(self.queue.redis, self.name, config.stream)  # /readyz counts play workers
        self.cancels = CancelWatcher(self.queue.redis, config.stream)  # runs whose caller went away
        self.in_hand: tuple[str, float] | None = None  # the entry being run, and since when (monotonic)
        self.saver = RowSaver(self.name)

    def stop(self) -> None:
        """Finish the job in hand, then leave `run`."""
        self.stopping = True

    def run(self) -> None:
        """The loop: claim stale jobs now and then, read new ones, handle each; survive Redis outages."""
        backoff = 0.1
        last_claim = 0.0
        last_periodic = 0.0
        periodic_every = hooks.periodic_every_seconds()
        connected = False
        self.cancels.start()
        self.saver.start()
        threading.Thread(target=self.keep_in_hand, name="entry-keeper", daemon=True).start()
        while not self.stopping:
            try:
                if not connected:
                    self.queue.ensure_group()
                    connected = True
                    logger.info("worker %s reading %s", self.name, self.config.stream)
                self.heartbeat.tick()
                if time.monotonic() - last_claim >= CLAIM_EVERY_SECONDS:
                    last_claim = time.monotonic()
                    self.handle_batch(self.queue.claim_stale(self.name, count=self.read_batch))
                if time.monotonic() - last_periodic >= periodic_every:
                    last_periodic = time.monotonic()
                    hooks.run_periodic()  # e.g. the webhook sweep: retries and events left unqueued
                batch = self.queue.read(self.name, count=self.read_batch, block_ms=self.read_block_ms())
                self.handle_batch(batch)
                self.stop_if_bloated()
                if not batch or self.runs_due():
                    self.save_runs()
                backoff = 0.1
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                connected = False
                logger.warning("worker %s lost Redis (%s); retrying in %.1fs", self.name, exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        self.save_runs()
        self.saver.stop()
        self.cancels.stop()
        self.delivery.close()
        logger.info("worker %s stopped after %s jobs", self.name, self.jobs_done)

    def keep_in_hand(self) -> None:
        """The keeper thread: while a run lasts past a third of the claim idle time, re-claim its
        entry for this worker and beat the heartbeat, each third of that time.

        A `play` may run up to CIRCLES_PLAY_MAX_TIMEOUT_MS and a job far longer, past
        CIRCLES_QUEUE_CLAIM_IDLE_MS:
        without this another worker would claim the entry of a run still going and run it a
        second time (its effects stay once, by the run's mark, but its CPU is spent twice), and
        the heartbeat, beaten from the loop the run holds, would lapse.
        """
        every = max(self.config.claim_idle_ms / 3000, 0.1)
        while not (self.stopping and self.in_hand is None):  # a stopping worker finishes its run
            time.sleep(every)
            in_hand = self.in_hand
            if in_hand is None or time.monotonic() - in_hand[1] < every:
                continue
            try:
                self.queue.redis.xclaim(
                    self.config.stream, self.config.group, self.name, 0, [in_hand[0]], justid=True
                )
                self.heartbeat.tick()
            except redis.RedisError as exc:
                logger.warning("worker %s could not keep entry %s (%s)", self.name, in_hand[0], exc)

    @contextlib.contextmanager
    def holding(self, entry_id: str) -> Iterator[None]:
        """The block runs entry `entry_id`: the keeper keeps it this worker's while it lasts."""
        self.in_hand = (entry_id, time.monotonic())
        try:
            yield
        finally:
            self.in_hand = None

    def stop_if_bloated(self) -> None:
        """Stop (to be replaced by the supervisor) once runs left too much memory behind.

        Closures that capture themselves form reference cycles nothing can free
        (docs/SCRIPTING.md, "Reference cycles"); a fresh process is the only way to get it back.
        """
        left = rhai.Engine.left_behind_bytes()
        if left > settings.CIRCLES_WORKER_MAX_LEFT_BEHIND_BYTES and not self.stopping:
            logger.warning("worker %s: runs left %d bytes behind; stopping to be replaced", self.name, left)
            self.stop()

    def keep_run(self, row: ScriptRun | None) -> None:
        """Hold a ScriptRun row to save later with others."""
        if row is not None:
            if not self.unsaved_runs:
                self.unsaved_since = time.monotonic()
            self.unsaved_runs.append(row)

    def runs_due(self) -> bool:
        """Whether the held rows should be saved now (enough of them, or the oldest waited enough)."""
        return len(self.unsaved_runs) >= SAVE_RUNS_AT or (
            bool(self.unsaved_runs) and time.monotonic() - self.unsaved_since >= SAVE_RUNS_AFTER_SECONDS
        )

    def read_block_ms(self) -> int:
        """How long a read may wait for jobs: no longer than until the held rows are due."""
        if not self.unsaved_runs:
            return self.block_ms
        due_in = SAVE_RUNS_AFTER_SECONDS - (time.monotonic() - self.unsaved_since)
        return max(1, min(self.block_ms, int(due_in * 1000)))

    def save_runs(self) -> None:
        """Save the held ScriptRun rows in one statement (on the `RowSaver` thread while `run` lasts).

        One INSERT per run was the largest part of a worker's CPU per job, and still a fifth
        of it when saved per read batch (docs/benchmarks/play.md); rows are for operators, so
        they are held up to SAVE_RUNS_AFTER_SECONDS and saved together. A worker killed in
        between loses those rows, never a job: every job was answered and acknowledged.
        """
        if self.unsaved_runs:
            runs, self.unsaved_runs = self.unsaved_runs, []
            self.saver.save(runs)

    def refresh_connections(self) -> None:
        """Before a batch (one entry): Django's clean-up, without a health-check ping per job while
        the worker is busy (`executor.db_health`)."""
        close_old_connections_lazily()

    def handle_batch(self, batch: list[QueuedJob]) -> None:
        """Handle jobs read together."""
        if batch:
            self.refresh_connections()
        cancelled = self.cancels.cancelled_in(batch) if batch else set()
        for delivery in batch:
            job = delivery.job
            if job is not None and (job.run_id in cancelled or self.cancels.heard(job.run_id)):
                self.drop(delivery, job)
            else:
                self.handle(delivery)

    def drop(self, delivery: QueuedJob, job: Job) -> None:
        """Acknowledge `delivery` (of `job`), whose caller went away before it ran, unrun (nobody
        waits for an answer)."""
        logger.debug("run %s cancelled before it ran: dropped", job.run_id)
        error = script_error("cancelled", "the caller went away before the run started")
        self.keep_run(RunReport.unrun(job, ScriptRun.Status.FAILED, error).run_row(worker=self.name))
        self.queue.finish(delivery.entry_id)
        self.jobs_done += 1

    def handle(self, delivery: QueuedJob) -> None:
        """Run one delivered job (or dead-letter it), then `finish` it."""
        job = delivery.job
        if job is None:
            logger.warning("worker %s: undecodable entry %s dead-lettered", self.name, delivery.entry_id)
            self.queue.dead_letter(delivery, "undecodable")
            return
        if delivery.deliveries > self.config.max_deliveries:
            # Each delivery after the first means the worker that had it died (or hung) before
            # answering: a job that killed its workers is not handed to the next one again.
            logger.warning("run %s delivered %s times: dead-lettered", job.run_id, delivery.deliveries)
            deaths = delivery.deliveries - 1
            error = script_error(
                "host", f"the job's worker died {deaths} times while running it; not run again"
            )
            report = RunReport.unrun(job, ScriptRun.Status.DEAD, error)
            self.finish(delivery, report, dead_letter=f"delivered {delivery.deliveries} times")
            metrics.JOB_DEAD.observe(0)
            return
        started = time.perf_counter()
        # The run's record changes go out with its answer, in `finish`'s one command.
        with (
            change_feed.collected() as changes,
            self.holding(delivery.entry_id),
            self.cancels.watching(job.run_id) as cancel,
        ):
            report = run_job(job, cancel=cancel, redelivered=delivery.deliveries > 1)
        self.finish(delivery, report, changes=changes)
        outcome = report.outcome
        elapsed = time.perf_counter() - started
        metrics.observe_job(outcome["ok"], elapsed)
        self.jobs_done += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "run %s %s in %.1f ms (%s, circle %s, request %s)",
                job.run_id,
                "ok" if outcome["ok"] else outcome["error"]["kind"],
                elapsed * 1000,
                job.source,
                job.circle_key[:16],
                job.request_id or "-",
            )

    def finish(
        self,
        delivery: QueuedJob,
        report: RunReport,
        *,
        dead_letter: str = "",
        changes: Sequence[change_feed.Message] = (),
    ) -> None:
        """The one finish sequence of a job: its row, its hooks, then its record changes, answer and
        acknowledgement (one command).

        A webhook event's row is saved first, because its hook links the event to it; a
        dead-lettered job's is saved at once too, for operators. Any other row is held and saved
        with others (`save_runs`), after its answer went out. `dead_letter` (the reason) moves
        the job to the dead-letter stream instead of acknowledging it (a job that was not run:
        it has no `changes`).
        """
        job, outcome = report.job, report.outcome
        save_first = job.event_id is not None or bool(dead_letter)
        try:
            if save_first:
                save_runs([report.run_row(worker=self.name, attempts=delivery.deliveries)])
            hooks.job_finished(job, outcome)  # only a job with an `event_id` has hooks
            publication = self.delivery.publication(job, outcome)
        except BaseException:
            change_feed.send(changes)  # committed: announced even if the answer never goes out
            raise
        if dead_letter:
            self.queue.dead_letter(delivery, dead_letter, publication)
        else:
            self.queue.finish(delivery.entry_id, publication, changes)
        if not save_first:  # built after the answer went out: the caller does not wait for it
            self.keep_run(report.run_row(worker=self.name, attempts=delivery.deliveries))
