"""A worker's job slot: a worker process that reads only the jobs' stream (`rhai_worker --job-slots`).

It is a `Worker` (the same loop, claims, cancel watcher and reconnects) whose jobs are job runs
(`executor.job_runs.run_record`): the job's row, not a waiting connection, gets the outcome,
and its change is published to the circle's group. While a run goes on (up to the jobs'
timeout cap, far past the queue's claim idle time) the worker's keeper thread
(`Worker.keep_in_hand`) re-claims its entry for this worker and beats the heartbeat, so no
other worker takes a job that is still running;
a worker that dies stops re-claiming, and after the idle time another slot runs the job again,
up to the queue's deliveries, then it ends `error` kind `host`.
"""

import logging

from executor.job_dispatch import settle
from executor.job_runs import end_dead, run_record
from executor.jobs import Job
from executor.queue import QueuedJob
from executor.worker import Worker

logger = logging.getLogger("executor.job_worker")


class JobWorker(Worker):
    """Runs job runs from the jobs' stream until stopped."""

    # One entry at a time: an entry read waits in this slot's hands behind a run that may last an
    # hour, unkept (another slot would claim and run it again), while other slots sit idle.
    read_batch = 1

    def drop(self, delivery: QueuedJob, job: Job) -> None:
        """A run stopped before it ran: its job already ended `error` (stopped); acknowledge it."""
        self.queue.finish(delivery.entry_id)
        self.jobs_done += 1

    def handle(self, delivery: QueuedJob) -> None:
        """Run one job run (or end its job `host` after too many deliveries), settle, acknowledge.

        A run's end, when it is the change's one event, is published by the acknowledgement
        itself (`settle(ride=True)`): after the commit, as before, in one round trip fewer.
        """
        job = delivery.job
        if job is None or job.job_id is None:
            logger.warning(
                "job slot %s: entry %s is not a job run; dead-lettered", self.name, delivery.entry_id
            )
            self.queue.dead_letter(delivery, "not a job run")
            return
        if delivery.deliveries > self.config.max_deliveries:
            logger.warning("job %s delivered %s times: dead-lettered", job.job_id, delivery.deliveries)
            settle(end_dead(job, delivery.deliveries), circle_key=job.circle_key)
            self.queue.dead_letter(delivery, f"delivered {delivery.deliveries} times")
            return
        with self.holding(delivery.entry_id), self.cancels.watching(job.run_id) as cancel:
            change = run_record(job, cancel, deliveries=delivery.deliveries)
        self.queue.finish(delivery.entry_id, settle(change, ride=True, circle_key=job.circle_key))
        self.jobs_done += 1
