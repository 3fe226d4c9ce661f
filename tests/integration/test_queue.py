"""The Redis Stream queue against a real redis-server: ack, claim, dead letter, deadline, bound, outages."""

import dataclasses
import subprocess
import sys
import threading
import time

import pytest

from circles.models import Record
from executor.jobs import Job
from executor.models import ScriptRun
from executor.queue import JobQueue, QueueConfig, QueueFull, QueueUnavailable
from executor.worker import Worker
from tests.helpers.redis_server import RedisServer
from tests.integration.conftest import make_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_enqueue_read_ack_leaves_nothing_behind(queue: JobQueue, circle) -> None:
    job = make_job(circle)
    queue.enqueue(job)
    [delivery] = queue.read("w1", block_ms=100)
    assert delivery.job == job and delivery.deliveries == 1
    assert queue.pending() == 1
    queue.finish(delivery.entry_id)
    assert queue.pending() == 0 and queue.length() == 0
    assert queue.read("w1", block_ms=50) == []


def next_message(listener, timeout: float = 2.0) -> bytes | None:
    """The next published payload (subscribe confirmations skipped), or None after `timeout`."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = listener.get_message(timeout=0.1)  # None also for a skipped confirmation
            if message is not None:
                return message["data"]
        return None
    finally:
        listener.close()


def test_finish_publishes_the_answer_and_acknowledges_in_one_step(queue: JobQueue, circle) -> None:
    listener = queue.redis.pubsub(ignore_subscribe_messages=True)
    listener.subscribe("answers")
    queue.enqueue(make_job(circle))
    [delivery] = queue.read("w1", block_ms=100)
    queue.finish(delivery.entry_id, ("answers", b"the outcome"))
    assert next_message(listener) == b"the outcome"
    assert queue.pending() == 0 and queue.length() == 0


def test_finish_publishes_the_runs_changes_before_the_answer(queue: JobQueue, circle) -> None:
    listener = queue.redis.pubsub(ignore_subscribe_messages=True)
    listener.subscribe("answers", "changes")
    queue.enqueue(make_job(circle))
    [delivery] = queue.read("w1", block_ms=100)
    queue.finish(delivery.entry_id, ("answers", b"the outcome"), [("changes", b"1"), ("changes", b"2")])
    heard = []
    deadline = time.monotonic() + 2
    while len(heard) < 3 and time.monotonic() < deadline:
        message = listener.get_message(timeout=0.1)
        if message is not None:
            heard.append((message["channel"], message["data"]))
    listener.close()
    assert heard == [(b"changes", b"1"), (b"changes", b"2"), (b"answers", b"the outcome")]
    assert queue.pending() == 0 and queue.length() == 0


def test_dead_letter_publishes_the_failure_and_takes_the_job_off_the_queue(queue: JobQueue, circle) -> None:
    listener = queue.redis.pubsub(ignore_subscribe_messages=True)
    listener.subscribe("answers")
    queue.enqueue(make_job(circle))
    [delivery] = queue.read("w1", block_ms=100)
    queue.dead_letter(delivery, "gave up", ("answers", b"the failure"))
    assert next_message(listener) == b"the failure"
    assert queue.pending() == 0 and queue.length() == 0 and queue.dead_length() == 1


def test_full_queue_refuses_instead_of_trimming(queue: JobQueue, circle) -> None:
    jobs = [make_job(circle, f"{i}") for i in range(5)]
    for job in jobs:
        queue.enqueue(job)
    with pytest.raises(QueueFull):
        queue.enqueue(make_job(circle))
    assert [d.job for d in queue.read("w1", count=10, block_ms=100)] == jobs  # nothing was trimmed


CRASHING_CONSUMER = """
import sys, time
from executor.queue import JobQueue, QueueConfig
queue = JobQueue(QueueConfig(url=sys.argv[1], stream=sys.argv[2]))
print(len(queue.read("doomed", block_ms=5000)), flush=True)
time.sleep(60)
"""


def test_job_of_a_killed_worker_is_claimed_by_another(
    queue: JobQueue, queue_config: QueueConfig, circle
) -> None:
    # Idle long enough that "not yet claimable" holds however slowly the kill below goes.
    queue_config = dataclasses.replace(queue_config, claim_idle_ms=1500)
    queue = JobQueue(queue_config)
    job = make_job(circle)
    queue.enqueue(job)
    doomed = subprocess.Popen(
        [sys.executable, "-c", CRASHING_CONSUMER, queue_config.url, queue_config.stream],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert doomed.stdout.readline().strip() == "1"  # it holds the job now
        doomed.kill()
        doomed.wait(5)
    finally:
        doomed.kill()
    assert queue.read("w2", block_ms=50) == []  # not redelivered as new
    assert queue.claim_stale("w2") == []  # not idle long enough yet
    time.sleep(queue_config.claim_idle_ms / 1000 + 0.1)
    [claimed] = queue.claim_stale("w2")
    assert claimed.job == job and claimed.deliveries == 2


def test_job_delivered_too_often_is_dead_lettered(queue: JobQueue, queue_config: QueueConfig, circle) -> None:
    job = make_job(circle, 'db::put("never", "written", #{}); 1')
    queue.enqueue(job)
    queue.read("w1", block_ms=100)
    for attempt in range(queue_config.max_deliveries):
        time.sleep(queue_config.claim_idle_ms / 1000 + 0.05)
        [delivery] = queue.claim_stale(f"w{attempt + 2}")
    assert delivery.deliveries == queue_config.max_deliveries + 1
    Worker(queue_config, name="judge").handle(delivery)
    assert queue.length() == 0 and queue.pending() == 0
    assert queue.dead_length() == 1
    run = ScriptRun.objects.get(id=job.run_id)
    assert run.status == ScriptRun.Status.DEAD and run.attempts == 3
    assert run.error_kind == "host" and "died 2 times" in run.error_message
    assert not Record.objects.exists()


def test_job_past_its_deadline_is_dropped_unrun(queue: JobQueue, queue_config: QueueConfig, circle) -> None:
    job = make_job(circle, 'db::put("late", "write", #{a: 1}); 1', timeout_ms=1)
    queue.enqueue(job)
    time.sleep(0.01)
    [delivery] = queue.read("w1", block_ms=100)
    worker = Worker(queue_config, name="w1")
    worker.handle(delivery)
    worker.save_runs()  # a worker saves the runs of a batch together, after answering them
    assert ScriptRun.objects.get(id=job.run_id).status == ScriptRun.Status.EXPIRED
    assert not Record.objects.exists()
    assert queue.length() == 0


def test_undecodable_entry_goes_to_dead_letter(queue: JobQueue, queue_config: QueueConfig) -> None:
    queue.redis.xadd(queue_config.stream, {"job": b"not json"})
    [delivery] = queue.read("w1", block_ms=100)
    assert delivery.job is None
    Worker(queue_config, name="w1").handle(delivery)
    assert queue.dead_length() == 1 and queue.length() == 0


def test_producer_fails_clearly_while_redis_is_down(tmp_path) -> None:
    server = RedisServer(tmp_path)
    queue = JobQueue(QueueConfig(url=server.url, stream="down"))
    job = Job.for_timeout(
        circle_id=1,
        circle_key="k",
        caller_id="c",
        caller_role="member",
        source="ws",
        script="1",
        timeout_ms=1000,
    )
    with pytest.raises(QueueUnavailable):
        queue.enqueue(job)


def test_worker_reconnects_after_redis_restarts(tmp_path, circle) -> None:
    server = RedisServer(tmp_path)
    server.start()
    config = QueueConfig(url=server.url, stream="restart", claim_idle_ms=60_000)
    worker = Worker(config, name="survivor", block_ms=100)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    producer = JobQueue(config)
    try:
        first = make_job(circle, "1")
        producer.enqueue(first)
        wait_for(lambda: ScriptRun.objects.filter(id=first.run_id).exists())
        server.stop()
        with pytest.raises(QueueUnavailable):
            producer.enqueue(make_job(circle))
        time.sleep(0.5)  # the worker notices and backs off
        server.start()
        second = make_job(circle, 'db::put("after", "restart", #{ok: true}); 2')
        producer.enqueue(second)
        wait_for(lambda: ScriptRun.objects.filter(id=second.run_id).exists(), timeout=15)
        assert ScriptRun.objects.get(id=second.run_id).status == ScriptRun.Status.SUCCEEDED
        assert Record.objects.get(collection="after", key="restart").data == {"ok": True}
    finally:
        worker.stop()
        thread.join(10)
        server.stop()
    assert not thread.is_alive()


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_job_run_twice_keeps_one_run_row(queue: JobQueue, queue_config: QueueConfig, circle) -> None:
    """A redelivered job (its worker died before acknowledging) is run again; its row is replaced."""
    job = make_job(circle, "1")
    queue.enqueue(job)
    [first] = queue.read("w1", block_ms=100)
    time.sleep(queue_config.claim_idle_ms / 1000 + 0.05)
    [again] = queue.claim_stale("w2")
    for delivery in (first, again):
        worker = Worker(queue_config, name="w")
        worker.handle(delivery)
        worker.save_runs()
    run = ScriptRun.objects.get(id=job.run_id)
    assert run.status == ScriptRun.Status.SUCCEEDED and run.attempts == 2


def test_a_run_longer_than_the_claim_idle_time_is_not_taken_by_another_worker(
    queue: JobQueue, queue_config: QueueConfig, circle
) -> None:
    """The worker keeps re-claiming the entry it is running: no second worker runs it meanwhile."""
    worker = Worker(queue_config, name="w1", block_ms=100)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    job = make_job(circle, 'loop { db::get("c", "k"); }', timeout_ms=1500)  # slow per operation
    queue.enqueue(job)
    try:
        wait_for(lambda: worker.in_hand is not None)
        started = time.monotonic()
        while worker.in_hand is not None:
            assert queue.claim_stale("w2") == []
            time.sleep(0.05)
        ran_for = time.monotonic() - started
        assert ran_for > 3 * queue_config.claim_idle_ms / 1000, ScriptRun.objects.get(id=job.run_id).error
        wait_for(lambda: queue.pending() == 0)
    finally:
        worker.stop()
        thread.join(10)
    run = ScriptRun.objects.get(id=job.run_id)
    assert run.attempts == 1 and run.error["kind"] in ("timeout", "operations")
