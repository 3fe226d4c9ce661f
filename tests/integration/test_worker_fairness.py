"""A worker never holds a job it cannot start: one entry read at a time, and row saves off its loop.

Both found with the fairness benchmark (docs/benchmarks/fairness.md): a worker that read a long
run and a short one together ran the short one after the long one, another worker idle; and a
worker saving its held ScriptRun rows (30-130 ms on the 2-core machine) did not read meanwhile.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, connections, transaction

from executor.models import ScriptRun
from executor.queue import JobQueue, QueueConfig
from executor.worker import Worker
from tests.integration.conftest import make_job
from tests.integration.test_queue import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = 'loop { db::get("c", "k"); }'  # slow per operation: runs to its timeout


@contextmanager
def running(*workers: Worker) -> Iterator[list[threading.Thread]]:
    threads = [threading.Thread(target=worker.run, daemon=True) for worker in workers]
    try:
        yield threads
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(15)


def test_a_short_job_queued_behind_a_long_one_is_run_by_an_idle_worker(
    queue: JobQueue, queue_config: QueueConfig, circle
) -> None:
    long, short = make_job(circle, SLOW, timeout_ms=2000), make_job(circle, "1")
    queue.enqueue(long)
    queue.enqueue(short)  # both wait on the stream when the first worker reads
    first = Worker(queue_config, name="first", block_ms=100)
    second = Worker(queue_config, name="second", block_ms=100)
    with running(first, second) as (thread_one, thread_two):
        thread_one.start()
        wait_for(lambda: first.in_hand is not None)
        thread_two.start()
        wait_for(lambda: ScriptRun.objects.filter(id__in=[long.run_id, short.run_id]).count() == 2, 15)
    rows = {str(row.id): row for row in ScriptRun.objects.filter(id__in=[long.run_id, short.run_id])}
    assert rows[short.run_id].worker == "second"
    assert rows[short.run_id].finished_at < rows[long.run_id].finished_at  # not after the long run


@contextmanager
def run_rows_locked() -> Iterator[None]:
    """Hold a lock on the ScriptRun table that blocks inserts (not reads), from another connection."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {ScriptRun._meta.db_table} IN EXCLUSIVE MODE")
                locked.set()
                release.wait(30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join(10)


def saves_waiting() -> int:
    """Connections waiting for the lock of `run_rows_locked`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
            [ScriptRun._meta.db_table],
        )
        return cursor.fetchone()[0]


def a_save_is_waiting() -> bool:
    return saves_waiting() > 0


def test_a_slow_save_of_run_rows_does_not_hold_the_next_job(
    queue: JobQueue, queue_config: QueueConfig, circle
) -> None:
    worker = Worker(queue_config, name="w", block_ms=100)
    first, second = make_job(circle, "1"), make_job(circle, "2")
    with running(worker) as (thread,), run_rows_locked():  # the lock goes before the worker stops
        thread.start()
        queue.enqueue(first)
        wait_for(lambda: worker.jobs_done == 1)
        wait_for(a_save_is_waiting)  # the queue went quiet: the first job's row is being saved
        queue.enqueue(second)
        wait_for(lambda: worker.jobs_done == 2)  # answered while the save still waits for the lock
        assert a_save_is_waiting()
    assert ScriptRun.objects.filter(id__in=[first.run_id, second.run_id]).count() == 2
