"""Jobs in embedded mode: no Redis, SQLite, the in-process executor's job threads."""

import time

import pytest

from tests.e2e.conftest import World
from tests.helpers.job_rpc import NotifiedClient

pytestmark = pytest.mark.e2e


async def test_the_lifecycle_and_a_stop_in_embedded_mode(start_server, sqlite_world: World) -> None:
    server = start_server(world=sqlite_world)
    async with await NotifiedClient.connect(f"{server}/{sqlite_world.circle}") as client:
        await client.sign_in(sqlite_world.member)
        subscription = await client.call("subscribe", {"topic": "jobs"})
        job_id = await client.call(
            "create_job", ['print("hi"); db::put("e", "k", #{n: 1}); ENV_VARS.A', 30, {"A": "a"}]
        )
        await client.call("start_job", [job_id])
        final = await client.final_of(subscription, job_id)
        assert final["status"] == "finished" and final["output"] == "a"
        statuses = [n["status"] for n in client.notifications[subscription] if n["job_id"] == job_id]
        assert statuses == ["dispatched", "started", "finished"]
        assert await client.call("get_job_logs", [job_id]) == {"logs": "hi"}
        assert await client.call("run_job", ["6 * 7"], timeout=30) == "42"
        looping = await client.call("create_job", {"script": 'print("early"); loop {}', "timeout": 600})
        await client.call("start_job", [looping])
        notices = await client.until(subscription, lambda n: n["job_id"] == looping and n.get("logs"))
        [live] = [n for n in notices if n["job_id"] == looping and n.get("logs")]
        assert live["status"] == "started" and live["logs"] == "early"  # pushed while it runs
        assert await client.call("get_job_logs", [looping]) == {"logs": "early"}
        began = time.monotonic()
        assert await client.call("stop_job", [looping]) == {"success": True}
        stopped = await client.final_of(subscription, looping)
        assert time.monotonic() - began < 0.5 and stopped["error"]["kind"] == "stopped"
        assert (await client.call("get_job", [looping]))["logs_size"] == 5  # a stopped job keeps its logs
        assert await client.call("run_job", ["1"], timeout=30) == "1"
