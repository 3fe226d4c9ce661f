"""The job slots' shares on a real redis-server: a run over its share waits until a place frees."""

import time
from dataclasses import replace

import pytest

from executor.job_shares import JobShareLimits, LocalJobShares, caller_key, circle_key, waiting_key
from executor.jobs import Job
from executor.queue import JobQueue, QueueConfig, QueueFull


def run(caller: str = "alice", circle: int = 1) -> Job:
    return Job(
        circle_id=circle, circle_key="k", caller_id=caller, caller_role="member", source="job", script="1",
        deadline=time.time() + 600, timeout_ms=60_000, job_id="00000000-0000-4000-8000-000000000000",
    )  # fmt: skip


@pytest.fixture
def queue(queue_config: QueueConfig) -> JobQueue:
    q = JobQueue(replace(queue_config, max_length=100))
    q.ensure_group()
    return q


def on_stream(queue: JobQueue) -> list[str]:
    """The run ids on the stream, oldest first."""
    return [fields[b"run"].decode() for _, fields in queue.redis.xrange(queue.config.stream)]


def test_a_run_over_its_callers_share_waits_and_goes_on_when_one_of_hers_ends(queue: JobQueue) -> None:
    limits = JobShareLimits(per_caller=2, per_circle=0)
    alice = [run() for _ in range(3)]
    first, second, third = (queue.enqueue_job_run(j, limits) for j in alice)
    bob = run("bob")
    assert first and second and third is None  # her third waits, not refused
    assert queue.enqueue_job_run(bob, limits)  # bob's own share: his starts while hers waits
    assert on_stream(queue) == [alice[0].run_id, alice[1].run_id, bob.run_id]
    assert queue.redis.llen(waiting_key(queue.config.stream, 1)) == 1
    delivered = {d.job.run_id: d for d in queue.read("slot", count=10, block_ms=100) if d.job}
    queue.finish(delivered[alice[0].run_id].entry_id)  # a slot ended one of hers: the waiting one goes on
    assert on_stream(queue) == [alice[1].run_id, bob.run_id, alice[2].run_id]
    assert queue.redis.llen(waiting_key(queue.config.stream, 1)) == 0
    [promoted] = queue.read("slot", count=10, block_ms=100)
    assert promoted.job == alice[2]
    assert queue.redis.zcard(caller_key(queue.config.stream, 1, "alice")) == 2


def test_a_circle_over_its_share_lets_the_first_waiting_run_with_room_go_on(queue: JobQueue) -> None:
    limits = JobShareLimits(per_caller=1, per_circle=2)
    a1, a2, b1, c1 = run("a"), run("a"), run("b"), run("c")
    assert queue.enqueue_job_run(a1, limits) and queue.enqueue_job_run(b1, limits)
    assert queue.enqueue_job_run(a2, limits) is None and queue.enqueue_job_run(c1, limits) is None
    assert queue.enqueue_job_run(run("d", circle=2), limits)  # another circle's share
    delivered = {d.job.run_id: d for d in queue.read("slot", count=10, block_ms=100) if d.job}
    queue.finish(delivered[b1.run_id].entry_id)  # the circle has a place; a's second still has none
    assert c1.run_id in on_stream(queue) and a2.run_id not in on_stream(queue)
    queue.dead_letter(delivered[a1.run_id], "test")  # a dead-lettered run gives its place back too
    assert a2.run_id in on_stream(queue)
    assert queue.redis.zcard(circle_key(queue.config.stream, 1)) == 2


def test_waiting_runs_count_toward_the_streams_bound(queue_config: QueueConfig) -> None:
    queue = JobQueue(replace(queue_config, max_length=2))
    queue.ensure_group()
    limits = JobShareLimits(per_caller=1, per_circle=0)
    assert queue.enqueue_job_run(run(), limits) and queue.enqueue_job_run(run(), limits) is None
    with pytest.raises(QueueFull):
        queue.enqueue_job_run(run("bob"), limits)


def test_no_bound_puts_every_run_on_the_stream(queue: JobQueue) -> None:
    limits = JobShareLimits(per_caller=0, per_circle=0)
    assert all(queue.enqueue_job_run(run(), limits) for _ in range(5))


def test_the_events_of_the_change_are_published_before_the_run_is_added_full_or_not(
    queue_config: QueueConfig,
) -> None:
    """`start_job`'s events ride the hand-over's script: published, in order, before the run is on
    the stream (a slot cannot announce `started` first), and even when the stream is full."""
    queue = JobQueue(replace(queue_config, max_length=1))
    queue.ensure_group()
    limits = JobShareLimits(per_caller=0, per_circle=0)
    listener = queue.redis.pubsub(ignore_subscribe_messages=True)
    listener.subscribe("events-a", "events-b")
    try:
        first = queue.enqueue_job_run(run(), limits, [("events-a", b"one"), ("events-b", b"two")])
        assert first is not None and on_stream(queue) != []
        with pytest.raises(QueueFull):
            queue.enqueue_job_run(run(), limits, [("events-a", b"three")])
        heard, deadline = [], time.monotonic() + 10
        while len(heard) < 3 and time.monotonic() < deadline:
            message = listener.get_message(timeout=1)  # None also for a subscription's confirmation
            if message is not None:
                heard.append((message["channel"], message["data"]))
        assert heard == [(b"events-a", b"one"), (b"events-b", b"two"), (b"events-a", b"three")]
    finally:
        listener.close()


def test_the_local_shares_hold_the_same_rules() -> None:
    shares = LocalJobShares(JobShareLimits(per_caller=1, per_circle=2))
    a1, a2, b1, c1 = run("a"), run("a"), run("b"), run("c")
    assert shares.take(a1) and not shares.take(a2) and shares.take(b1) and not shares.take(c1)
    assert shares.give_back(b1) == [c1]  # the circle's place: a's second still waits for hers
    assert shares.give_back(a1) == [a2]
    assert shares.give_back(a2) == [] and shares.give_back(c1) == [] and not shares.waiting
