"""The in-process executor: one pool for `play` and webhook jobs, each finished as a worker does."""

import threading
import time

import pytest

from executor import local
from executor.local import LocalExecutor
from executor.models import ScriptRun
from tests.integration.conftest import make_job
from tests.integration.test_queue import wait_for as wait_until
from tests.integration.test_worker_fairness import a_save_is_waiting, run_rows_locked

pytestmark = pytest.mark.django_db(transaction=True)


def row_exists(run_id: str) -> bool:
    return ScriptRun.objects.filter(id=run_id).exists()


def wait_for_row(run_id: str) -> ScriptRun:
    """The run's row, once the row saver's thread has saved it."""
    deadline = time.monotonic() + 10
    while not row_exists(run_id):
        assert time.monotonic() < deadline, "the row was never saved"
        time.sleep(0.02)
    return ScriptRun.objects.get(id=run_id)


def test_a_play_is_answered_before_its_row_is_saved_and_done_comes_after_the_answer(circle) -> None:
    job = make_job(circle, "40 + 2")
    seen: list[tuple[str, object]] = []
    over = threading.Event()

    def answer(outcome: dict) -> None:
        seen.append(("answer", outcome["result"]["value"]))
        seen.append(("row before the answer", row_exists(job.run_id)))

    def done() -> None:
        seen.append(("done", None))
        over.set()

    LocalExecutor(1).submit(job, answer, done)
    assert over.wait(10)
    assert seen == [("answer", 42), ("row before the answer", False), ("done", None)]
    assert wait_for_row(job.run_id).worker == local.WORKER_NAME  # saved by the row saver's thread


def test_a_webhook_job_has_its_row_saved_before_its_hooks_run(circle, monkeypatch) -> None:
    job = make_job(circle, "1", source="webhook:stripe", role="service", event_id=12345)
    seen: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        local.hooks,
        "job_finished",
        lambda job, outcome: seen.append((outcome["run_id"], row_exists(job.run_id))),
    )
    LocalExecutor(1).submit(job).future.result(10)
    assert seen == [(job.run_id, True)]


def test_a_run_that_fails_inside_the_server_is_answered_host_and_recorded(circle, monkeypatch) -> None:
    job = make_job(circle, "1")

    def crash(job, cancel=None):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(local, "run_job", crash)
    outcomes: list[dict] = []
    LocalExecutor(1).submit(job, outcomes.append).future.result(10)
    [outcome] = outcomes
    assert not outcome["ok"] and outcome["error"]["kind"] == "host"
    assert "database went away" not in outcome["error"]["message"]  # never internals to clients
    assert wait_for_row(job.run_id).status == ScriptRun.Status.FAILED


def test_a_run_not_started_yet_is_withdrawn_and_a_running_one_cancelled(circle) -> None:
    executor = LocalExecutor(1)
    started, release = threading.Event(), threading.Event()
    executor.pool.submit(lambda: (started.set(), release.wait(10)))  # hold the only thread
    assert started.wait(10)
    waiting = executor.submit(make_job(circle, "1"))
    assert waiting.stop() is True  # withdrawn: never reaches a thread
    release.set()
    outcomes: list[dict] = []
    running = executor.submit(make_job(circle, "loop {}", timeout_ms=5000), outcomes.append)
    while not running.future.running():
        time.sleep(0.001)
    assert running.stop() is False  # already on its thread: its token is cancelled
    running.future.result(10)
    assert outcomes[0]["error"]["kind"] == "cancelled"


def test_a_slow_save_of_a_row_does_not_hold_the_thread_for_the_next_play(circle) -> None:
    """The pool's one thread answers a second play while the first one's row waits to be saved."""
    executor = LocalExecutor(1)
    first, second = make_job(circle, "1"), make_job(circle, "2")
    with run_rows_locked():
        executor.submit(first).future.result(10)
        wait_until(a_save_is_waiting)
        outcomes: list[dict] = []
        executor.submit(second, outcomes.append).future.result(10)  # not behind the save
        assert outcomes[0]["result"]["value"] == 2 and a_save_is_waiting()
    wait_for_row(first.run_id), wait_for_row(second.run_id)
