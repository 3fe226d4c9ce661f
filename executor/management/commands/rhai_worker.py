"""`manage.py rhai_worker --concurrency N --job-slots M`: worker processes running scripts from Redis.

N processes read the `play` and webhook queue; M more (default 1) read only the jobs' stream
(`CIRCLES_JOBS_STREAM`), so long jobs never take the capacity `play` runs on.
"""

import logging
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

logger = logging.getLogger("executor.worker")


def _worker_main(job_slot: bool = False) -> None:
    """One child: its own engine, Redis and database connections; SIGTERM finishes the job in hand.

    A `job_slot` child reads the jobs' stream and runs job runs on the jobs' engine.
    """
    from executor.engine import job_engine, shared_engine
    from executor.job_dispatch import jobs_queue_config
    from executor.job_worker import JobWorker
    from executor.queue import QueueConfig
    from executor.worker import Worker

    worker: Worker
    if job_slot:
        job_engine()
        worker = JobWorker(jobs_queue_config())
    else:
        shared_engine()  # build before the first job, not during it
        worker = Worker(QueueConfig.from_settings())
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    worker.run()


class Command(BaseCommand):
    help = "Run script workers: each process reads jobs from the Redis Stream and runs them with Rhai."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int, default=1, help="worker processes (one engine each)")
        parser.add_argument(
            "--job-slots", type=int, default=1, help="more processes that run only jobs (0: none)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.REDIS_URL:
            raise CommandError("REDIS_URL is not set: workers read jobs from Redis")
        concurrency = options["concurrency"]
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        job_slots = options["job_slots"]
        if job_slots < 0:
            raise CommandError("--job-slots must not be negative")
        connections.close_all()  # children must not share the parent's database sockets
        context = multiprocessing.get_context("fork")
        stopping = False

        def spawn(index: int) -> BaseProcess:
            job_slot = index >= concurrency
            name = f"rhai-job-slot-{index - concurrency}" if job_slot else f"rhai-worker-{index}"
            child = context.Process(target=_worker_main, args=(job_slot,), name=name)
            child.start()
            return child

        def forward(signum: int, _frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True
            for child in children:
                if child.is_alive() and child.pid is not None:
                    os.kill(child.pid, signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        children = [spawn(i) for i in range(concurrency + job_slots)]
        logger.info("started %s worker processes and %s job slots", concurrency, job_slots)
        # Supervise: a child that dies while we are not stopping (OOM kill, crash) is replaced.
        while not stopping:
            for index, child in enumerate(children):
                if not child.is_alive() and not stopping:
                    logger.warning(
                        "worker process %s exited with %s; starting another", child.pid, child.exitcode
                    )
                    children[index] = spawn(index)
            time.sleep(0.5)
        for child in children:
            child.join()
        codes = [child.exitcode for child in children]
        logger.info("workers stopped: exit codes %s", codes)
        sys.exit(0 if all(code == 0 for code in codes) else 1)
