"""No one member fills the job slots: two real `rhai_worker` job slots, real Redis, uvicorn, PostgreSQL.

With a share of one running job per caller, a member who starts two endless jobs holds one slot;
her second waits `dispatched` (not refused) while another member's job takes the other slot and
finishes; once she stops her first, her second starts.
"""

import uuid

import pytest

from tests.e2e.conftest import World
from tests.helpers.job_rpc import NotifiedClient
from tests.helpers.redis_server import RedisServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def settings(redis_server: RedisServer) -> dict[str, str]:
    return {
        "REDIS_URL": redis_server.url,
        "CIRCLES_QUEUE_STREAM": f"e2e-job-shares:{uuid.uuid4().hex[:8]}",
        "CIRCLES_JOBS_MAX_RUNNING_PER_CALLER": "1",
    }


@pytest.fixture(scope="module")
def server(start_server, start_workers, settings) -> str:
    for _ in range(2):
        start_workers(**settings, job_slots=1)  # two job slots in all
    return start_server(**settings)


async def signed_in(server: str, world: World, key) -> NotifiedClient:
    client = await NotifiedClient.connect(f"{server}/{world.circle}")
    await client.sign_in(key)
    return client


async def test_one_member_holds_her_share_and_another_members_job_runs(server: str, world: World) -> None:
    async with (
        await signed_in(server, world, world.member) as member,
        await signed_in(server, world, world.admin) as other,
    ):
        await member.call("clear_all_jobs")  # what earlier tests left of hers in the shared database
        mine = await member.call("subscribe", {"topic": "jobs"})
        first, second = [await member.call("create_job", {"script": "loop {}", "timeout": 600}) for _ in "ab"]
        for job_id in (first, second):
            assert await member.call("start_job", [job_id]) == {"success": True}  # never refused
        await member.until(mine, lambda n: n["job_id"] == first and n["status"] == "started")

        # The other slot is free for another member, though she has a job waiting.
        assert await other.call("run_job", ['"theirs"'], timeout=60) == "theirs"
        assert await member.call("get_job_status", [second]) == "dispatched"

        assert await member.call("stop_job", [first]) == {"success": True}
        await member.until(mine, lambda n: n["job_id"] == second and n["status"] == "started", timeout=30)
        assert await member.call("stop_job", [second]) == {"success": True}
        final = await member.final_of(mine, second)
        assert final["error"]["kind"] == "stopped"
        assert await member.call("clear_all_jobs") == {"deleted": 2}
