"""Hostile plays against the real server: the scripts that crashed it, and answers too big to send.

Each runs in embedded mode (threads of the one uvicorn process, SQLite) and behind Redis with a
real `rhai_worker`, as a guest of a circle that lets guests play: the run ends in a documented
error, the connection and the process carry on, and no worker dies.
"""

import os
import uuid

import pytest

from tests.e2e.conftest import World
from tests.helpers.redis_server import RedisServer
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e

BIG_STRING = 'let s = "x"; for i in 0..19 { s += s; } '  # 512 KiB

# The three shapes of the finding (SIGSEGV when the chain was dropped), and the memory grower.
CRASHERS = {
    "closure_chain": ("let f = |x| x; loop { let g = f; f = |x| g.call(x) + 1; }", {"operations", "memory"}),
    "closures_in_arrays": ("let a = []; loop { let b = a; a = [|| b]; }", {"operations", "memory"}),
    "closures_in_maps": ("let m = #{}; loop { let b = m; m = #{f: || b}; }", {"operations", "memory"}),
    "memory_growth": (
        BIG_STRING + 'let m = #{}; let i = 0; loop { m["k" + i] = s + i; i += 1; }',
        {"memory"},
    ),
}
# A map of 200 strings of 512 KiB: a 100 MiB answer (the finding stored and sent all of it).
HUGE_ANSWER = BIG_STRING + 'let m = #{}; for i in 0..200 { m["k" + i] = s; } m'


@pytest.fixture(scope="module")
def queue_settings(redis_server: RedisServer) -> dict[str, str]:
    return {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e:{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="module")
def worker(start_workers, queue_settings):
    return start_workers(**queue_settings)


@pytest.fixture(scope="module", params=["embedded", "redis"])
def mode(request, start_server, sqlite_world, queue_settings) -> tuple[str, str]:
    """(url, mode): the embedded server on SQLite, or a server whose plays go to a real worker."""
    if request.param == "embedded":
        return start_server(world=sqlite_world), "embedded"
    request.getfixturevalue("worker")
    return start_server(**queue_settings), "redis"


async def guest(url: str, world: World) -> RpcClient:
    client = await RpcClient.connect(f"{url}/{world.open_circle}")
    await client.sign_in(world.guest)
    return client


async def play_error(client: RpcClient, script: str) -> dict:
    response = await client.request("play", {"script": script, "timeout_ms": 60_000}, timeout=90)
    assert response.get("error", {}).get("code") == -32000, response
    return response["error"]["data"]


@pytest.mark.parametrize("shape", sorted(CRASHERS))
async def test_a_guest_s_crashing_script_ends_in_a_documented_error(mode, world, request, shape) -> None:
    url, kind = mode
    script, kinds = CRASHERS[shape]
    async with await guest(url, world) as client:
        error = await play_error(client, script)
        assert error["kind"] in kinds, error
        assert (await client.call("play", {"script": "40 + 2"}, timeout=30))["value"] == 42
    if kind == "redis":
        worker = request.getfixturevalue("worker")
        assert worker.alive() and "exited with" not in worker.output()  # no child died


async def test_an_answer_too_big_to_send_is_a_result_size_error(mode, world) -> None:
    url, _ = mode
    async with await guest(url, world) as client:
        error = await play_error(client, HUGE_ANSWER)
        assert error["kind"] == "result_size" and "CIRCLES_RESULT_MAX_BYTES" in error["message"], error
        assert (await client.call("play", {"script": "1"}, timeout=30))["value"] == 1


async def test_an_answer_past_the_channel_layer_cap_is_an_error_never_a_timeout(
    start_server, start_workers, queue_settings, world
) -> None:
    """The finding: a 40 MiB result went through Redis and was lost; the client saw `timeout`."""
    own = {**queue_settings, "CIRCLES_QUEUE_STREAM": f"e2e:{uuid.uuid4().hex[:8]}"}
    big_results = {"CIRCLES_RESULT_MAX_BYTES": str(64 * 1024 * 1024)}
    start_workers(**own, **big_results, CIRCLES_LAYER_MAX_MESSAGE_BYTES=str(1024 * 1024))
    url = start_server(**own, **big_results)
    script = BIG_STRING + 'let m = #{}; for i in 0..4 { m["k" + i] = s; } m'  # 2 MiB of value and of output
    async with await guest(url, world) as client:
        error = await play_error(client, script)
        assert error["kind"] == "result_size" and "channel layer" in error["message"], error


def worker_children(supervisor_pid: int) -> list[int]:
    """The worker processes a `rhai_worker` supervisor runs now."""
    with open(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children") as f:
        return [int(pid) for pid in f.read().split()]


async def wait_until_delivered(redis_url: str, stream: str, times: int) -> None:
    """Until the one pending job has been handed to a worker `times` times."""
    import asyncio

    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        for _ in range(600):
            try:
                pending = client.xpending_range(stream, "workers", min="-", max="+", count=1)
            except redis.ResponseError:  # NOGROUP: the worker has not made its group yet
                pending = []
            if pending and pending[0]["times_delivered"] >= times:
                return
            await asyncio.sleep(0.05)
        info = client.xinfo_groups(stream) if client.exists(stream) else "no stream"
        raise AssertionError(f"the job was not delivered {times} times: {info}")
    finally:
        client.close()


async def test_a_job_whose_worker_died_twice_is_not_run_a_third_time(
    start_server, start_workers, queue_settings, world
) -> None:
    """Each death hands the job to the next worker; after two, it is dead-lettered as `host`."""
    import asyncio
    import signal

    own = {**queue_settings, "CIRCLES_QUEUE_STREAM": f"e2e:{uuid.uuid4().hex[:8]}"}
    supervisor = start_workers(
        **own, CIRCLES_QUEUE_CLAIM_IDLE_MS="500", CIRCLES_SCRIPT_MAX_OPERATIONS=str(10**12)
    )
    url = start_server(**own)
    async with await guest(url, world) as client:
        request = asyncio.ensure_future(
            client.request("play", {"script": "loop {}", "timeout_ms": 60_000}, timeout=90)
        )
        for deliveries in (1, 2):
            await wait_until_delivered(own["REDIS_URL"], own["CIRCLES_QUEUE_STREAM"], deliveries)
            await asyncio.sleep(0.2)  # the worker has started the run
            [child] = worker_children(supervisor.pid)
            os.kill(child, signal.SIGKILL)
        response = await request
    assert response["error"]["code"] == -32000, response
    error = response["error"]["data"]
    assert error["kind"] == "host" and "died 2 times" in error["message"], error
