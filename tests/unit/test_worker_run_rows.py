"""When a worker saves the ScriptRun rows it holds: at 100 rows, after 0.5 s, and no read waits past that."""

import time

from executor.models import ScriptRun
from executor.queue import QueueConfig
from executor.worker import SAVE_RUNS_AFTER_SECONDS, SAVE_RUNS_AT, Worker


def idle_worker() -> Worker:
    return Worker(QueueConfig(url="redis://127.0.0.1:1/0"), name="w", block_ms=1000)  # never connects here


def test_nothing_held_nothing_due_and_reads_wait_the_full_block() -> None:
    worker = idle_worker()
    worker.keep_run(None)  # a run the recording policy does not keep
    assert not worker.runs_due() and worker.read_block_ms() == 1000


def test_rows_are_due_when_enough_wait() -> None:
    worker = idle_worker()
    for _ in range(SAVE_RUNS_AT - 1):
        worker.keep_run(ScriptRun())
    assert not worker.runs_due()
    worker.keep_run(ScriptRun())
    assert worker.runs_due()


def test_rows_are_due_when_the_oldest_waited_long_enough_and_reads_stop_short_of_that() -> None:
    worker = idle_worker()
    worker.keep_run(ScriptRun())
    assert not worker.runs_due()
    assert 1 <= worker.read_block_ms() <= SAVE_RUNS_AFTER_SECONDS * 1000
    worker.unsaved_since = time.monotonic() - SAVE_RUNS_AFTER_SECONDS
    assert worker.runs_due() and worker.read_block_ms() == 1
