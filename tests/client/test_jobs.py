"""Jobs and subscriptions in `circles_client`, against the in-process fake of tests/client/fake_jobs.py.

What is checked here is the client's part: the calls and their params, notifications routed by
subscription id (also when one comes right behind the subscribe answer), `Job.wait()` resolved
by a notification and not by polling, re-subscribing under the server's new id after a
reconnect, and a job that finished while the client was disconnected still resolving `wait()`.
"""

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from circles_client import (
    CircleClient,
    ConnectionLost,
    ExecutionError,
    Forbidden,
    InvalidParams,
    Job,
    JobNotFound,
    SigningKey,
    WrongJobState,
)
from circles_client.jobs import later, state_of
from tests.client.fake_jobs import FakeJobsCircle

KEY = SigningKey.from_hex("22" * 32)
OTHER = SigningKey.from_hex("33" * 32)


@pytest.fixture
async def circle() -> AsyncIterator[FakeJobsCircle]:
    fake = FakeJobsCircle()
    await fake.start()
    yield fake
    if fake.server is not None:
        await fake.stop()


@pytest.fixture
async def client(circle: FakeJobsCircle) -> AsyncIterator[CircleClient]:
    client = fast_client(circle.url)
    await client.open()
    yield client
    await client.close()


def fast_client(url: str, key: SigningKey = KEY, **options) -> CircleClient:
    options = {"reconnect_delay": 0.02, "reconnect_max_delay": 0.2, "reconnect_timeout": 3.0} | options
    client = CircleClient(url, key, **options)
    client._random = random.Random(3)
    return client


async def until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# --- the calls ----------------------------------------------------------------------------------


async def test_create_sends_only_the_params_given_and_returns_a_handle(
    client: CircleClient, circle: FakeJobsCircle
) -> None:
    first = await client.create_job("1 + 1")
    second = await client.create_job(
        "ENV_VARS.name", timeout=20, env_vars={"name": "x"}, prerequisites=[first]
    )
    assert isinstance(first, Job) and first.id in circle.jobs
    created = [params for _, method, params in circle.calls if method == "create_job"]
    assert created == [
        {"script": "1 + 1"},
        {"script": "ENV_VARS.name", "timeout": 20, "env_vars": {"name": "x"}, "prerequisites": [first.id]},
    ]
    assert (await second.get())["prerequisites"] == [first.id]
    assert await second.status() == "created"


async def test_every_call_of_the_wire_contract(client: CircleClient, circle: FakeJobsCircle) -> None:
    job = await client.create_job("print(1); 2")
    assert await client.start_job(job.id) == {"success": True}
    assert await client.get_job_status(job.id) == "dispatched"
    with pytest.raises(WrongJobState) as wrong:
        await client.start_job(job.id)
    assert wrong.value.status == "dispatched" and wrong.value.rpc_code == -32005
    with pytest.raises(WrongJobState) as unfinished:
        await job.output()
    assert unfinished.value.status == "dispatched"
    with pytest.raises(WrongJobState):
        await client.delete_job(job.id)
    await circle.advance(job.id, "started", logs="1")
    assert await client.get_job_logs(job.id) == "1" and await job.logs() == "1"
    await circle.advance(job.id, "finished", output="2", value=2, logs="more")
    assert await client.get_job_output(job.id) == "2"
    assert await job.logs() == "1\nmore"
    assert (await client.get_job(job.id))["status"] == "finished"
    assert await client.run_job("40 + 2") == "42"
    assert [j["id"] for j in await client.list_jobs(status="finished")] == [job.id]
    assert len(await client.list_jobs(limit=1)) == 1
    assert await client.delete_job(job.id) == {"success": True}
    with pytest.raises(JobNotFound) as missing:
        await client.get_job(job.id)
    assert missing.value.job_id == job.id and missing.value.rpc_code == -32004
    with pytest.raises(Forbidden):
        await client.list_jobs(all_jobs=True)
    assert await client.clear_all_jobs() == 1  # run_job's
    assert circle.jobs == {}


async def test_list_jobs_pages_with_before(client: CircleClient, circle: FakeJobsCircle) -> None:
    ids = [(await client.create_job(str(n))).id for n in range(5)]
    page = await client.list_jobs(limit=2)
    assert [j["id"] for j in page] == ids[::-1][:2]
    rest = await client.list_jobs(before=page[-1]["id"])
    assert [j["id"] for j in rest] == ids[::-1][2:]
    listed = [params for _, method, params in circle.calls if method == "list_jobs"]
    assert listed == [{"limit": 2}, {"before": page[-1]["id"]}]


async def test_another_callers_job_is_not_found(client: CircleClient, circle: FakeJobsCircle) -> None:
    job = await client.create_job("1")
    other = fast_client(circle.url, OTHER)
    try:
        await other.open()
        with pytest.raises(JobNotFound):
            await other.job(job.id).status()
        with pytest.raises(JobNotFound):
            await other.job(job.id).wait()  # the subscription itself is refused
        assert other.subscriptions == 0
    finally:
        await other.close()


# --- subscriptions ------------------------------------------------------------------------------


async def test_notifications_are_routed_by_subscription_id(
    client: CircleClient, circle: FakeJobsCircle
) -> None:
    one, two = await client.create_job("1"), await client.create_job("2")
    watch_one = await client.subscribe("jobs", job_id=one.id)
    watch_all = await client.subscribe("jobs")
    assert watch_one.id != watch_all.id and watch_one.id.startswith("0x")
    await circle.advance(two.id, "dispatched")
    await circle.advance(one.id, "dispatched")
    assert (await watch_all.next(timeout=2))["job_id"] == two.id
    assert (await watch_all.next(timeout=2))["job_id"] == one.id
    assert (await watch_one.next(timeout=2)) == {
        "job_id": one.id,
        "status": "dispatched",
        "updated_at": circle.jobs[one.id]["updated_at"],
    }
    assert watch_one.pending() == 0
    assert await client.unsubscribe(watch_one) is True
    assert ("unsubscribe", {"subscription": watch_all.id}) not in [(m, p) for _, m, p in circle.calls]
    await circle.advance(one.id, "started")
    assert (await watch_all.next(timeout=2))["status"] == "started"
    with pytest.raises(StopAsyncIteration):
        await watch_one.next(timeout=2)  # ended, and the late notification went nowhere
    assert client.subscriptions == 1
    assert await watch_all.close() is True and client.subscriptions == 0


async def test_a_notification_right_behind_the_subscribe_answer_is_not_lost(
    client: CircleClient, circle: FakeJobsCircle
) -> None:
    job = await client.create_job("1")
    circle.hold_subscribe_answer = True
    subscription = await client.subscribe("jobs", job_id=job.id)
    assert (await subscription.next(timeout=2))["status"] == "early"


async def test_a_failed_catch_up_gives_the_subscription_up(
    client: CircleClient, circle: FakeJobsCircle
) -> None:
    async def gone(connection) -> None:
        await connection.request("get_job", {"job_id": "missing"})

    with pytest.raises(JobNotFound):
        await client.subscribe("jobs", catch_up=gone)
    assert client.subscriptions == 0 and len(client._after_sign_in) == 0
    assert circle.methods()[-1] == "unsubscribe" and circle.connections[0].subscriptions == {}


async def test_a_refused_subscribe_raises_and_registers_nothing(client: CircleClient) -> None:
    with pytest.raises(InvalidParams):
        await client.subscribe("weather")
    assert client.subscriptions == 0 and len(client._after_sign_in) == 0


async def test_closing_the_client_ends_every_subscription(circle: FakeJobsCircle) -> None:
    client = fast_client(circle.url)
    await client.open()
    subscription = await client.subscribe("jobs")
    waiting = asyncio.create_task(subscription.next())
    await client.close()
    with pytest.raises(ConnectionLost, match="was closed"):
        await waiting


async def test_without_reconnect_a_drop_ends_the_subscriptions(circle: FakeJobsCircle) -> None:
    client = fast_client(circle.url, reconnect=False)
    try:
        await client.open()
        subscription = await client.subscribe("jobs")
        await circle.drop_all()
        with pytest.raises(ConnectionLost, match="close 1012"):
            await subscription.next(timeout=2)
    finally:
        await client.close()


async def test_resubscribes_under_the_new_id_after_a_reconnect(
    client: CircleClient, circle: FakeJobsCircle
) -> None:
    job = await client.create_job("1")
    subscription = await client.subscribe("jobs")
    old_id = subscription.id
    await circle.drop_all()
    await until(lambda: client.reconnects == 1 and client.connected)
    assert circle.methods(2) == ["fetch_nonce", "authenticate", "subscribe"]  # before any call
    assert subscription.id != old_id and subscription.subscribed == 2
    assert list(circle.connections[1].subscriptions) == [subscription.id]
    await circle.advance(job.id, "dispatched")
    assert (await subscription.next(timeout=2))["status"] == "dispatched"


async def test_a_subscription_the_server_refuses_after_a_reconnect_ends_with_that_error(
    client: CircleClient, circle: FakeJobsCircle
) -> None:
    job = await client.create_job("1")
    subscription = await client.subscribe("jobs", job_id=job.id)
    del circle.jobs[job.id]  # deleted from elsewhere while we were away
    await circle.drop_all()
    await until(lambda: client.reconnects == 1 and client.connected)
    with pytest.raises(JobNotFound):
        await subscription.next(timeout=2)
    assert client.subscriptions == 0


# --- the job handle -----------------------------------------------------------------------------


async def test_wait_subscribes_before_reading_and_resolves_on_the_notification(
    client: CircleClient, circle: FakeJobsCircle
) -> None:
    job = await client.create_job("long()")
    waiting = asyncio.create_task(job.wait(start=True))
    await until(lambda: circle.jobs[job.id]["status"] == "dispatched")
    assert circle.methods(1)[-3:] == ["subscribe", "get_job", "start_job"]
    await circle.advance(job.id, "started")
    await asyncio.sleep(0.2)
    assert not waiting.done()
    reads = circle.methods().count("get_job") + circle.methods().count("get_job_status")
    await circle.advance(job.id, "finished", output="7", value=7)
    state = await asyncio.wait_for(waiting, 2)
    assert state["status"] == "finished" and state["output"] == "7" and state["value"] == 7
    assert circle.methods().count("get_job") + circle.methods().count("get_job_status") == reads  # no polling
    assert circle.methods()[-1] == "unsubscribe" and client.subscriptions == 0


async def test_wait_on_a_job_already_finished_returns_from_its_state(
    client: CircleClient, circle: FakeJobsCircle
) -> None:
    job = await client.create_job("1")
    await circle.advance(job.id, "finished", notify=False, output="1", value=1)
    state = await asyncio.wait_for(job.wait(), 2)
    assert state == state_of(circle.public(circle.jobs[job.id]))


async def test_follow_yields_logs_then_the_final_state(client: CircleClient, circle: FakeJobsCircle) -> None:
    job = await client.create_job("work()")
    seen: list[dict] = []

    async def follow() -> None:
        async for state in job.follow(start=True):
            seen.append(state)

    following = asyncio.create_task(follow())
    await until(lambda: circle.jobs[job.id]["status"] == "dispatched")
    await circle.advance(job.id, "started")
    await circle.advance(job.id, "started", logs="a\nb")
    await circle.advance(job.id, "finished", output="()", value=None)
    await asyncio.wait_for(following, 2)
    assert [(s["status"], s.get("logs")) for s in seen] == [
        ("created", None),  # the state read once subscribed
        ("dispatched", None),
        ("started", None),
        ("started", "a\nb"),
        ("finished", None),
    ]
    assert job.state == seen[-1]


async def test_result_raises_the_jobs_execution_error(client: CircleClient, circle: FakeJobsCircle) -> None:
    job = await client.create_job("loop {}")
    waiting = asyncio.create_task(job.result(start=True))
    await until(lambda: circle.jobs[job.id]["status"] == "dispatched")
    await job.stop()
    with pytest.raises(ExecutionError) as failed:
        await asyncio.wait_for(waiting, 2)
    assert failed.value.kind == "stopped" and "stopped by its caller" in str(failed.value)


async def test_a_job_that_finished_while_disconnected_still_resolves_wait(
    client: CircleClient, circle: FakeJobsCircle
) -> None:
    job = await client.create_job("long()")
    waiting = asyncio.create_task(job.wait(start=True))
    await until(lambda: circle.jobs[job.id]["status"] == "dispatched")
    await circle.advance(job.id, "started")
    await circle.stop()  # the server goes away...
    await until(lambda: not client.connected)
    await circle.advance(job.id, "finished", output="done", value="done")  # ...the job finishes, unseen
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await circle.start()  # back on the same port: no notification will ever come for it
    state = await asyncio.wait_for(waiting, 5)
    assert state["status"] == "finished" and state["output"] == "done"
    assert circle.methods(2)[:4] == ["fetch_nonce", "authenticate", "subscribe", "get_job"]


def test_states_only_move_forward() -> None:
    started, finished = {"status": "started"}, {"status": "finished"}
    assert later(started, None) and later(finished, started)
    assert later({"status": "started", "logs": "x"}, started)  # more logs
    assert not later(started, finished) and not later(finished, finished)
    assert not later({"status": "dispatched"}, started)
