"""The ASGI side's producer on a real redis-server: pipelined adds, the bound, outages, script reloads."""

import asyncio

from executor.jobs import Job
from executor.producer import AsyncJobProducer
from executor.queue import JobQueue, QueueConfig, QueueUnavailable
from tests.helpers.processes import free_port
from tests.helpers.redis_server import RedisServer


def job(n: int) -> Job:
    return Job.for_timeout(
        circle_id=1, circle_key="k", caller_id="c", caller_role="member", source="ws", script=f"{n}",
        timeout_ms=5000,
    )  # fmt: skip


async def enqueue_all(producer: AsyncJobProducer, jobs: list[Job]) -> list[str | Exception]:
    return await asyncio.gather(*(producer.enqueue(j) for j in jobs), return_exceptions=True)


def test_jobs_asked_for_together_all_land_in_order(queue_config: QueueConfig, queue: JobQueue) -> None:
    config = QueueConfig(
        url=queue_config.url, stream=queue_config.stream, group=queue_config.group, max_length=500
    )
    jobs = [job(n) for n in range(300)]
    ids = asyncio.run(enqueue_all(AsyncJobProducer(config), jobs))
    assert all(isinstance(entry_id, str) for entry_id in ids) and len(set(ids)) == 300
    read = queue.read("w1", count=500, block_ms=100)
    assert [d.job for d in read] == jobs and [d.entry_id for d in read] == ids


def test_past_the_bound_each_extra_job_is_refused_and_none_is_trimmed(
    queue_config: QueueConfig, queue
) -> None:
    jobs = [job(n) for n in range(8)]  # the fixture's bound is 5
    outcomes = asyncio.run(enqueue_all(AsyncJobProducer(queue_config), jobs))
    assert [type(o).__name__ for o in outcomes] == ["str"] * 5 + ["QueueFull"] * 3
    assert [d.job for d in queue.read("w1", count=10, block_ms=100)] == jobs[:5]


def test_a_flushed_script_cache_is_reloaded(queue_config: QueueConfig, queue: JobQueue) -> None:
    async def scenario() -> None:
        producer = AsyncJobProducer(queue_config)
        await producer.enqueue(job(1))
        queue.redis.script_flush()  # as after a Redis restart
        await producer.enqueue(job(2))

    asyncio.run(scenario())
    assert [d.job.script for d in queue.read("w1", count=10, block_ms=100)] == ["1", "2"]


def test_every_waiting_job_fails_clearly_while_redis_is_down() -> None:
    producer = AsyncJobProducer(QueueConfig(url=f"redis://127.0.0.1:{free_port()}/0", stream="down"))
    outcomes = asyncio.run(enqueue_all(producer, [job(n) for n in range(3)]))
    assert all(isinstance(outcome, QueueUnavailable) for outcome in outcomes)


def test_a_caller_that_gives_up_does_not_disturb_the_others(queue_config: QueueConfig, queue) -> None:
    async def scenario() -> list:
        producer = AsyncJobProducer(queue_config)
        impatient = asyncio.ensure_future(producer.enqueue(job(0)))
        others = [asyncio.ensure_future(producer.enqueue(job(n))) for n in (1, 2)]
        impatient.cancel()
        return await asyncio.gather(*others)

    ids = asyncio.run(scenario())
    assert len(ids) == 2
    scripts = [d.job.script for d in queue.read("w1", count=10, block_ms=100)]
    assert scripts[-2:] == ["1", "2"]  # the cancelled job may or may not have been sent first


def test_the_first_job_after_a_redis_restart_is_queued(tmp_path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    config = QueueConfig(url=server.url, stream="restart")

    async def scenario() -> str:
        producer = AsyncJobProducer(config)
        await producer.enqueue(job(1))
        server.stop()
        server.start()
        await asyncio.sleep(0.05)  # the loop sees the old connection's end
        return await producer.enqueue(job(2))  # on a fresh connection, not the dead one

    try:
        assert isinstance(asyncio.run(scenario()), str)
    finally:
        server.stop()
