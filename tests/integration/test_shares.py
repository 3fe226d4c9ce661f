"""Shares and cancellations on a real redis-server, as several ASGI processes and workers see them."""

import asyncio
import time

import pytest

from executor.cancels import CancelNotices, CancelWatcher, cancel_key
from executor.jobs import Job
from executor.producer import AsyncJobProducer
from executor.queue import JobQueue, QueueConfig, QueueFull
from executor.shares import CALLER, CIRCLE, OverShare, ShareClaim, ShareLimits, caller_share_key


def job(caller: str = "alice", circle: int = 1, timeout_ms: int = 5000) -> Job:
    return Job.for_timeout(
        circle_id=circle, circle_key="k", caller_id=caller, caller_role="member", source="ws", script="1",
        timeout_ms=timeout_ms,
    )  # fmt: skip


@pytest.fixture
def config(queue_config: QueueConfig) -> QueueConfig:
    return QueueConfig(url=queue_config.url, stream=queue_config.stream, group=queue_config.group)


async def add(producer: AsyncJobProducer, config: QueueConfig, limits: ShareLimits, j: Job) -> str | str:
    """The entry id, or the share that refused."""
    try:
        return await producer.enqueue(j, ShareClaim.for_job(j, config.stream, limits))
    except OverShare as exc:
        return exc.which


def test_a_callers_share_holds_across_processes_until_a_worker_finishes(config: QueueConfig) -> None:
    limits = ShareLimits(per_caller=2, per_circle=10)
    queue = JobQueue(config)
    queue.ensure_group()

    async def scenario() -> list:
        one, two = AsyncJobProducer(config), AsyncJobProducer(config)  # two ASGI processes
        return [
            await add(one, config, limits, job()),
            await add(two, config, limits, job()),
            await add(one, config, limits, job()),  # alice's third: over her share, from either process
            await add(two, config, limits, job("bob")),  # bob has a share of his own
        ]

    first, _second, third, bob = asyncio.run(scenario())
    assert third == CALLER and bob.count("-") == 1
    assert queue.length() == 3
    delivery = next(d for d in queue.read("w1", count=10, block_ms=100) if d.entry_id == first)
    queue.finish(delivery.entry_id)  # the worker acknowledged it: alice's place is free
    assert queue.redis.zcard(caller_share_key(config.stream, "alice")) == 1
    assert asyncio.run(add(AsyncJobProducer(config), config, limits, job())) not in (CALLER, CIRCLE)


def test_a_dead_lettered_job_gives_its_place_back_like_a_finished_one(config: QueueConfig) -> None:
    limits = ShareLimits(per_caller=1, per_circle=0)
    queue = JobQueue(config)
    queue.ensure_group()
    asyncio.run(add(AsyncJobProducer(config), config, limits, job()))
    [queued] = queue.read("w1", block_ms=100)
    queue.dead_letter(queued, "gave up")  # the same one-step end as `finish`, plus the copy kept
    assert queue.redis.zcard(caller_share_key(config.stream, "alice")) == 0
    assert queue.dead_length() == 1 and queue.length() == 0


def test_a_circles_share_counts_every_caller(config: QueueConfig) -> None:
    limits = ShareLimits(per_caller=5, per_circle=2)

    async def scenario() -> list:
        producer = AsyncJobProducer(config)
        return [await add(producer, config, limits, job(who)) for who in ("alice", "bob", "carol")] + [
            await add(producer, config, limits, job("carol", circle=2))
        ]

    outcomes = asyncio.run(scenario())
    assert outcomes[2] == CIRCLE and CIRCLE not in (outcomes[0], outcomes[1], outcomes[3])


def test_a_place_left_by_a_dead_process_counts_only_until_the_runs_deadline(config: QueueConfig) -> None:
    limits = ShareLimits(per_caller=1, per_circle=0)

    async def scenario() -> list:
        producer = AsyncJobProducer(config)
        first = await add(producer, config, limits, job(timeout_ms=200))  # never finished by anyone
        refused = await add(producer, config, limits, job())
        await asyncio.sleep(0.3)
        return [first, refused, await add(producer, config, limits, job())]

    _first, refused, later = asyncio.run(scenario())
    assert refused == CALLER and later not in (CALLER, CIRCLE)
    client = JobQueue(config).redis
    key = caller_share_key(config.stream, "alice")
    assert 0 < client.pttl(key) <= 5000 + 60_000  # the set itself expires too


def test_a_full_queue_answers_before_the_shares(config: QueueConfig) -> None:
    small = QueueConfig(url=config.url, stream=config.stream, group=config.group, max_length=1)
    limits = ShareLimits(per_caller=1, per_circle=1)

    async def scenario() -> None:
        producer = AsyncJobProducer(small)
        await producer.enqueue(job(), ShareClaim.for_job(job(), small.stream, limits))
        with pytest.raises(QueueFull):
            await producer.enqueue(job(), ShareClaim.for_job(job(), small.stream, limits))

    asyncio.run(scenario())


def test_the_shared_add_script_is_reloaded_after_a_flush(config: QueueConfig) -> None:
    limits = ShareLimits(per_caller=3, per_circle=3)

    async def scenario() -> list:
        producer = AsyncJobProducer(config)
        first = await add(producer, config, limits, job())
        JobQueue(config).redis.script_flush()
        return [first, await add(producer, config, limits, job())]

    assert all(outcome.count("-") == 1 for outcome in asyncio.run(scenario()))


# --- cancellations -------------------------------------------------------------------------


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_a_cancel_notice_stops_the_job_in_hand(config: QueueConfig) -> None:
    queue = JobQueue(config)
    watcher = CancelWatcher(queue.redis, config.stream)
    watcher.start()
    try:
        assert wait_until(lambda: watcher._subscribed_since is not None)
        running = job()
        with watcher.watching(running.run_id) as token:
            asyncio.run(CancelNotices(config.url, config.stream).send(running.run_id, running.deadline))
            assert wait_until(lambda: token.cancelled)
        assert watcher.heard(running.run_id)
    finally:
        watcher.stop()


def test_a_job_cancelled_before_the_worker_listened_is_found_by_its_key(config: QueueConfig) -> None:
    queue = JobQueue(config)
    queue.ensure_group()
    old, fresh = job(), job()
    asyncio.run(CancelNotices(config.url, config.stream).send(old.run_id, old.deadline))  # nobody listens
    assert queue.redis.pttl(cancel_key(config.stream, old.run_id)) > 0
    queue.enqueue(old)
    queue.enqueue(fresh)
    watcher = CancelWatcher(queue.redis, config.stream)  # not started: every job is checked by key
    assert watcher.cancelled_in(queue.read("w1", count=10, block_ms=100)) == {old.run_id}
