"""Jobs end to end: real uvicorn (two), real Redis, two real `rhai_worker` processes, PostgreSQL."""

import os
import signal
import time
import uuid

import pytest

from tests.e2e.conftest import World
from tests.helpers.job_rpc import FINAL, NotifiedClient
from tests.helpers.keys import WalletKey
from tests.helpers.redis_server import RedisServer

pytestmark = pytest.mark.e2e
LONG_LOOP = "let n = 0; while n < {n} {{ n += 1 }} n"


@pytest.fixture(scope="module")
def queue_settings(redis_server: RedisServer) -> dict[str, str]:
    name = f"e2e-jobs:{uuid.uuid4().hex[:8]}"
    return {
        "REDIS_URL": redis_server.url,
        "CIRCLES_QUEUE_STREAM": name,
        "CIRCLES_QUEUE_CLAIM_IDLE_MS": "1000",
    }


@pytest.fixture(scope="module")
def workers(start_workers, queue_settings):
    return [start_workers(**queue_settings, job_slots=1) for _ in range(2)]


@pytest.fixture(scope="module")
def servers(start_server, queue_settings, workers) -> list[str]:
    limits = {"CIRCLES_MAX_CONNECTIONS_PER_ADDRESS": "500", "CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE": "500"}
    return [start_server(**queue_settings, **limits) for _ in range(2)]


async def signed_in(server: str, world: World, key: WalletKey) -> NotifiedClient:
    client = await NotifiedClient.connect(f"{server}/{world.circle}")
    await client.sign_in(key)
    return client


async def error_of(client: NotifiedClient, method: str, params) -> dict:
    response = await client.request(method, params, timeout=30)
    assert "error" in response, response
    return response["error"]


async def test_the_whole_lifecycle_through_each_method(servers, world: World) -> None:
    async with await signed_in(servers[0], world, world.member) as client:
        script = 'print("hello"); print(ENV_VARS.WHO); #{who: ENV_VARS.WHO, n: 42}'
        job_id = await client.call("create_job", [script, 30, {"WHO": "me"}])
        assert uuid.UUID(job_id).version == 4
        assert await client.call("get_job_status", [job_id]) == "created"
        output_error = await error_of(client, "get_job_output", [job_id])
        assert output_error["code"] == -32005 and output_error["data"] == {"status": "created"}
        subscription = await client.call("subscribe", {"topic": "jobs", "job_id": job_id})
        assert subscription.startswith("0x") and len(subscription) == 34
        assert await client.call("start_job", [job_id]) == {"success": True}
        final = await client.final_of(subscription, job_id)
        statuses = [n["status"] for n in client.notifications[subscription]]
        assert statuses == ["dispatched", "started", "finished"]
        assert final["output"] == '#{"n": 42, "who": "me"}' or "42" in final["output"]
        assert final["value"] == {"who": "me", "n": 42} and final["error"] is None
        assert await client.call("get_job_output", [job_id]) == final["output"]
        assert await client.call("get_job_logs", [job_id]) == {"logs": "hello\nme"}
        job = await client.call("get_job", [job_id])
        assert job["id"] == job_id and job["status"] == "finished" and job["context_id"] == world.circle
        assert job["caller_id"] == world.member.pubkey and job["env_vars"] == {"WHO": "me"}
        assert job["timeout"] == 30 and job["logs_size"] == len("hello\nme") and job["elapsed_ms"] >= 0
        assert job["created_at"].endswith("Z") and job["finished_at"].endswith("Z")
        again = await error_of(client, "start_job", [job_id])
        assert again["code"] == -32005 and again["data"]["status"] == "finished"
        listed = await client.call("list_jobs", {"status": "finished"})
        assert job_id in [j["id"] for j in listed]
        assert await client.call("run_job", {"script": "6 * 7"}, timeout=30) == "42"
        failed = await error_of(client, "run_job", {"script": 'throw "no"'})
        assert failed["code"] == -32000 and failed["data"]["kind"] == "throw"
        assert await client.call("delete_job", [job_id]) == {"success": True}
        assert (await error_of(client, "get_job", [job_id]))["code"] == -32004
        assert (await client.call("clear_all_jobs"))["deleted"] >= 2
        assert await client.call("list_jobs") == []
        assert await client.call("unsubscribe", [subscription]) is True
        assert await client.call("unsubscribe", [subscription]) is False
        document = await client.call("rpc.discover")
        names = {m["name"] for m in document["methods"]}
        assert {"create_job", "run_job", "stop_job", "subscribe", "unsubscribe", "clear_all_jobs"} <= names
        assert [n["name"] for n in document["x-notifications"]] == ["subscription"]


async def test_stop_interrupts_a_loop_within_half_a_second(servers, world: World) -> None:
    async with await signed_in(servers[0], world, world.member) as client:
        job_id = await client.call("create_job", {"script": "loop {}", "timeout": 600})
        subscription = await client.call("subscribe", {"topic": "jobs", "job_id": job_id})
        await client.call("start_job", [job_id])
        await client.until(subscription, lambda n: n["status"] == "started")
        began = time.monotonic()
        assert await client.call("stop_job", [job_id]) == {"success": True}
        final = await client.final_of(subscription, job_id)
        assert time.monotonic() - began < 0.5
        assert final["status"] == "error" and final["error"]["kind"] == "stopped"
        stopped = await error_of(client, "stop_job", [job_id])
        assert stopped["code"] == -32005 and stopped["data"]["status"] == "error"
        # The slot that ran it is free again: both slots take new jobs.
        mine = await client.call("subscribe", {"topic": "jobs"})
        ids = [await client.call("create_job", [str(i)]) for i in range(4)]
        for job_id in ids:
            await client.call("start_job", [job_id])
        outputs = [(await client.final_of(mine, job_id))["output"] for job_id in ids]
        assert outputs == ["0", "1", "2", "3"]


async def test_a_chain_of_three_prerequisites_and_a_failure_propagating(servers, world: World) -> None:
    async with await signed_in(servers[0], world, world.member) as client:
        subscription = await client.call("subscribe", {"topic": "jobs"})
        first = await client.call("create_job", ['db::put("chain", "a", #{n: 1}); 1'])
        second = await client.call(
            "create_job", {"script": 'db::get("chain", "a").n + 1', "prerequisites": [first]}
        )
        third = await client.call("create_job", {"script": "3", "prerequisites": [second]})
        for job_id in (third, second):
            await client.call("start_job", [job_id])
            assert await client.call("get_job_status", [job_id]) == "dispatched"
        await client.call("start_job", [first])
        assert (await client.final_of(subscription, third))["output"] == "3"
        assert await client.call("get_job_output", [second]) == "2"
        order = [n["job_id"] for n in client.notifications[subscription] if n["status"] == "finished"]
        assert order == [first, second, third]

        bad = await client.call("create_job", ['throw "broken"'])
        after = await client.call("create_job", {"script": "1", "prerequisites": [bad]})
        last = await client.call("create_job", {"script": "2", "prerequisites": [after]})
        for job_id in (last, after, bad):
            await client.call("start_job", [job_id])
        ended = await client.final_of(subscription, last)
        assert ended["status"] == "error" and ended["error"]["kind"] == "prerequisite"
        assert after in ended["error"]["message"]
        assert (await client.call("get_job", [after]))["error"]["kind"] == "prerequisite"


async def test_a_job_outlives_its_socket(servers, world: World) -> None:
    async with await signed_in(servers[0], world, world.member) as client:
        job_id = await client.call("create_job", [LONG_LOOP.format(n=5_000_000), 60])
        await client.call("start_job", [job_id])
    async with await signed_in(servers[1], world, world.member) as client:
        subscription = await client.call("subscribe", {"topic": "jobs", "job_id": job_id})
        if await client.call("get_job_status", [job_id]) not in FINAL:
            await client.final_of(subscription, job_id, timeout=30)
        assert await client.call("get_job_output", [job_id]) == "5000000"


async def test_a_killed_worker_leaves_the_job_run_again_and_the_subscriber_told(
    servers, world: World, redis_server: RedisServer, queue_settings
) -> None:
    import redis as redis_py

    stream = queue_settings["CIRCLES_QUEUE_STREAM"] + ":long"
    client_redis = redis_py.Redis.from_url(redis_server.url)
    async with await signed_in(servers[0], world, world.member) as client:
        job_id = await client.call("create_job", [LONG_LOOP.format(n=8_000_000), 60])
        subscription = await client.call("subscribe", {"topic": "jobs", "job_id": job_id})
        await client.call("start_job", [job_id])
        await client.until(subscription, lambda n: n["status"] == "started")
        pending = client_redis.xpending_range(stream, "workers", min="-", max="+", count=10)
        assert len(pending) == 1, pending
        os.kill(int(pending[0]["consumer"].decode().rsplit("-", 1)[1]), signal.SIGKILL)
        final = await client.final_of(subscription, job_id, timeout=40)
        assert final["status"] == "finished" or final["error"]["kind"] == "host"
        if final["status"] == "finished":
            assert final["output"] == "8000000"
            assert len([n for n in client.notifications[subscription] if n["status"] == "started"]) == 2
        assert await client.call("run_job", ["1"], timeout=30) == "1"  # the supervisor replaced it


async def test_another_members_job_is_invisible_and_the_owner_sees_all(servers, world: World) -> None:
    async with (
        await signed_in(servers[0], world, world.member) as member,
        await signed_in(servers[0], world, world.admin) as admin,
        await signed_in(servers[1], world, world.owner) as owner,
    ):
        watching = await owner.call("subscribe", {"topic": "jobs", "all": True})
        job_id = await member.call("create_job", ["7"])
        admins_job = await admin.call("create_job", ["8"])
        for method in ("get_job", "get_job_status", "get_job_logs", "stop_job", "delete_job"):
            hidden = await error_of(member, method, [admins_job])
            assert hidden["code"] == -32004 and hidden["data"] == {"job_id": admins_job}
        assert (await error_of(member, "subscribe", {"topic": "jobs", "job_id": admins_job}))[
            "code"
        ] == -32004
        assert (await error_of(member, "list_jobs", {"all": True}))["code"] == -32003
        assert (await error_of(member, "subscribe", {"topic": "jobs", "all": True}))["code"] == -32003
        assert job_id not in [j["id"] for j in await admin.call("list_jobs")]
        everyone = {j["id"] for j in await owner.call("list_jobs", {"all": True})}
        assert {job_id, admins_job} <= everyone
        assert (await owner.call("get_job", [job_id]))["caller_id"] == world.member.pubkey
        await member.call("start_job", [job_id])
        assert (await owner.final_of(watching, job_id))["output"] == "7"
        assert await owner.call("delete_job", [job_id]) == {"success": True}
        assert (await error_of(member, "get_job", [job_id]))["code"] == -32004


async def test_each_limit_with_its_error(start_server, queue_settings, workers, world: World) -> None:
    server = start_server(
        **queue_settings,
        CIRCLES_JOBS_MAX_ACTIVE_PER_CALLER="2",
        CIRCLES_JOBS_MAX_PREREQUISITES="2",
        CIRCLES_JOBS_TIMEOUT_MAX_SECONDS="100",
        CIRCLES_JOBS_MAX_ENV_VARS="2",
        CIRCLES_MAX_SUBSCRIPTIONS_PER_CONNECTION="2",
        CIRCLES_JOBS_MAX_SCRIPT_BYTES="1000",
    )
    async with (
        await signed_in(server, world, world.member) as client,
        await signed_in(server, world, world.admin) as admin,
    ):

        def invalid(field: str):
            return lambda error: error["code"] == -32602 and error["data"]["field"] == field

        cases = [
            ({"script": "x" * 1001}, invalid("script")),
            ({"script": "1", "timeout": 101}, invalid("timeout")),
            ({"script": "1", "timeout": 0}, invalid("timeout")),
            ({"script": "1", "env_vars": {"1BAD": "x"}}, invalid("env_vars")),
            ({"script": "1", "env_vars": {"A": "x" * 5000}}, invalid("env_vars")),
            ({"script": "1", "env_vars": {"A": "1", "B": "2", "C": "3"}}, invalid("env_vars")),
            ({"script": "1", "env_vars": {"A": 1}}, invalid("env_vars")),
        ]
        for params, check in cases:
            response = await client.request("create_job", params)
            assert check(response["error"]), (params, response)
        first = await client.call("create_job", ["1"])
        theirs = await admin.call("create_job", ["1"])
        ids = [await client.call("create_job", ["1"]) for _ in range(2)]
        assert invalid("prerequisites")(
            await error_of(client, "create_job", {"script": "1", "prerequisites": [first, *ids]})
        )
        assert invalid("prerequisites")(
            await error_of(client, "create_job", {"script": "1", "prerequisites": [theirs]})
        )
        waiting = [
            await client.call("create_job", {"script": "1", "prerequisites": [first]}) for _ in range(3)
        ]
        for job_id in waiting[:2]:
            await client.call("start_job", [job_id])  # dispatched, waiting for `first`
        over = await error_of(client, "start_job", [waiting[2]])
        assert over["code"] == -32029 and over["data"] == {"reason": "too many active jobs for this key"}
        await client.call("subscribe", ["jobs"])
        await client.call("subscribe", ["jobs"])
        too_many = await error_of(client, "subscribe", ["jobs"])
        assert too_many["code"] == -32029 and too_many["data"] == {"reason": "too many subscriptions"}
        assert (await error_of(client, "subscribe", ["nothing"]))["code"] == -32602
        running = await error_of(client, "delete_job", [waiting[0]])
        assert running["code"] == -32005 and running["data"]["status"] == "dispatched"
        for job_id in waiting[:2]:
            await client.call("stop_job", [job_id])
        assert await client.call("get_job_status", [waiting[0]]) == "error"
    async with await NotifiedClient.connect(f"{server}/{world.circle}") as anonymous:
        assert (await error_of(anonymous, "create_job", ["1"]))["code"] == -32001
