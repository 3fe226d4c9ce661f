"""`play` end to end: real uvicorn, real Redis, two real `rhai_worker` processes, real WebSockets."""

import asyncio
import os
import signal
import uuid

import pytest

from tests.e2e.conftest import World
from tests.helpers.keys import WalletKey
from tests.helpers.redis_server import RedisServer
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def queue_settings(redis_server: RedisServer) -> dict[str, str]:
    """Settings shared by the server and its workers: the private Redis, a stream of this module's own."""
    return {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e:{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="module")
def workers(start_workers, queue_settings):
    return [start_workers(**queue_settings, CIRCLES_QUEUE_CLAIM_IDLE_MS="1000") for _ in range(2)]


@pytest.fixture(scope="module")
def server(start_server, queue_settings, workers) -> str:
    # 200 clients of one test come from one address at once: the per-address limits are raised.
    # They are one key playing at once, load rather than a flood: its line is not bounded.
    return start_server(
        **queue_settings,
        CIRCLES_MAX_CONNECTIONS_PER_ADDRESS="500",
        CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE="500",
        CIRCLES_MAX_WAITING_PER_CALLER="0",
    )


async def signed_in(server: str, world: World, key: WalletKey, circle: str | None = None) -> RpcClient:
    client = await RpcClient.connect(f"{server}/{circle or world.circle}")
    await client.sign_in(key)
    return client


async def play_error(client: RpcClient, script: str, **params) -> dict:
    response = await client.request("play", {"script": script, **params}, timeout=30)
    assert "error" in response, response
    assert response["error"]["code"] == -32000, response
    return response["error"]["data"]


async def test_member_runs_a_script(server: str, world: World) -> None:
    async with await signed_in(server, world, world.member) as client:
        result = await client.call("play", {"script": "let x = 10; x * 2"}, timeout=30)
    assert result["output"] == "20" and result["value"] == 20 and result["logs"] == []
    assert uuid.UUID(result["run_id"]) and result["elapsed_ms"] >= 0


async def test_logs_values_and_caller_constants(server: str, world: World) -> None:
    script = """
        fn me() { CALLER_ID }
        print("hello");
        debug(CALLER_ROLE);
        #{ me: me(), circle: CONTEXT_ID, role: CALLER_ROLE, list: [1, 2.5, "x", true, ()] }
    """
    async with await signed_in(server, world, world.admin) as client:
        result = await client.call("play", [script])
    assert result["value"] == {
        "me": world.admin.pubkey,
        "circle": world.circle,
        "role": "admin",
        "list": [1, 2.5, "x", True, None],
    }
    assert result["logs"][0] == "hello" and "admin" in result["logs"][1]


async def test_dsl_reads_and_writes_records(server: str, world: World) -> None:
    async with await signed_in(server, world, world.member) as client:
        version = await client.call("play", {"script": 'db::put("notes", "n1", #{text: "hi"})'})
        assert version["value"] == 1
        assert (await client.call("play", {"script": 'db::put("notes", "n1", #{text: "again"})'}))[
            "value"
        ] == 2
        await client.call("play", {"script": 'db::put("notes", "n2", #{text: "two"})'})
        got = await client.call("play", {"script": 'db::get("notes", "n1")'})
        assert got["value"] == {"text": "again"}
        listed = await client.call("play", {"script": 'db::list("notes", 10, "n").map(|r| r.key)'})
        assert listed["value"] == ["n1", "n2"]
        assert (await client.call("play", {"script": 'db::count("notes")'}))["value"] == 2
        assert (await client.call("play", {"script": 'db::delete("notes", "n2")'}))["value"] is True
        assert (await client.call("play", {"script": 'db::get("notes", "n2")'}))["value"] is None
        info = (await client.call("play", {"script": "circle::info()"}))["value"]
        assert info["id"] == world.circle and info["name"] == "e2e" and info["members"] == 2
        members = (await client.call("play", {"script": "circle::members()"}))["value"]
        assert {m["role"] for m in members} == {"owner", "admin", "member"}


async def test_failed_run_leaves_no_write_behind(server: str, world: World) -> None:
    async with await signed_in(server, world, world.member) as client:
        error = await play_error(client, 'db::put("atomic", "k", #{a: 1});\nthrow "boom";')
        assert error["kind"] == "throw" and error["line"] == 2
        assert (await client.call("play", {"script": 'db::get("atomic", "k")'}))["value"] is None


async def test_guest_reads_but_cannot_write_where_guests_may_play(server: str, world: World) -> None:
    async with await signed_in(server, world, world.guest, world.open_circle) as client:
        assert (await client.call("play", {"script": 'db::count("x")'}))["value"] == 0
        error = await play_error(client, 'db::put("x", "y", #{})')
        assert error["kind"] == "host" and "may not write" in error["message"]


async def test_guest_is_refused_in_a_members_only_circle(server: str, world: World) -> None:
    async with await signed_in(server, world, world.guest) as client:
        response = await client.request("play", {"script": "1"})
        assert response["error"]["code"] == -32003


async def test_errors_carry_kind_line_and_column(server: str, world: World) -> None:
    async with await signed_in(server, world, world.member) as client:
        parse = await play_error(client, "let x = ;")
        assert parse["kind"] == "parse" and parse["line"] == 1 and parse["column"] is not None
        runtime = await play_error(client, 'let a = 1;\nlet b = a + "x" * 2;')
        assert runtime["kind"] == "runtime" and runtime["line"] == 2
        nan = await play_error(client, "0.0 / 0.0")
        assert nan["kind"] == "runtime"


async def test_runaway_script_stops_and_the_worker_stays_healthy(server: str, world: World) -> None:
    async with await signed_in(server, world, world.member) as client:
        error = await play_error(client, "loop {}", timeout_ms=500)
        assert error["kind"] in ("timeout", "operations")
        for _ in range(4):  # both workers still answer
            assert (await client.call("play", {"script": "1 + 1"}))["value"] == 2


async def test_slow_play_does_not_delay_whoami(server: str, world: World) -> None:
    async with await signed_in(server, world, world.member) as client:
        await client.send_json(
            {
                "jsonrpc": "2.0",
                "method": "play",
                "params": {"script": "loop {}", "timeout_ms": 1500},
                "id": "slow",
            }
        )
        await client.send_json({"jsonrpc": "2.0", "method": "whoami", "id": "fast"})
        first = await client.recv_json(timeout=1.0)
        assert first["id"] == "fast"
        assert (await client.response_to("slow", timeout=10))["error"]["code"] == -32000


async def test_many_clients_get_their_own_answers(server: str, world: World) -> None:
    async def one_client(n: int) -> None:
        async with await signed_in(server, world, world.member) as client:
            for i in range(20):
                result = await client.call("play", {"script": f"{n} * 1000 + {i}"}, timeout=60)
                assert result["value"] == n * 1000 + i

    await asyncio.gather(*(one_client(n) for n in range(200)))


async def test_worker_killed_mid_script_does_not_hang_the_client(
    server: str, world: World, redis_server: RedisServer, queue_settings
) -> None:
    stream = queue_settings["CIRCLES_QUEUE_STREAM"]
    async with await signed_in(server, world, world.member) as client:
        await client.send_json(
            {
                "jsonrpc": "2.0",
                "method": "play",
                "params": {"script": "loop {}", "timeout_ms": 3000},
                "id": "doomed",
            }
        )
        redis = redis_server.client()
        for _ in range(100):
            pending = redis.xpending_range(stream, "workers", min="-", max="+", count=1)
            if pending:
                break
            await asyncio.sleep(0.02)
        consumer = pending[0]["consumer"].decode()
        os.kill(int(consumer.rsplit("-", 1)[1]), signal.SIGKILL)
        # Answered by the deadline (3 s + the consumer's grace): by the consumer's own timeout, or
        # by the worker that claimed the job after the idle timeout and ran it out.
        answer = await client.response_to("doomed", timeout=4.5)
        assert answer["error"]["code"] == -32000
        assert answer["error"]["data"]["kind"] in ("timeout", "operations")
        assert (await client.call("play", {"script": "6 * 7"}, timeout=10))["value"] == 42


# --- without workers: a full queue, and Redis away ----------------------------------------------


async def test_full_queue_answers_32012(start_server, world: World, redis_server: RedisServer) -> None:
    lonely = f"e2e-full:{uuid.uuid4().hex[:8]}"  # no worker reads this stream
    server = start_server(
        REDIS_URL=redis_server.url, CIRCLES_QUEUE_STREAM=lonely, CIRCLES_QUEUE_MAX_LENGTH="1"
    )
    async with await signed_in(server, world, world.member) as client:
        await client.send_json({"jsonrpc": "2.0", "method": "play", "params": ["1", 300], "id": "queued"})
        await asyncio.sleep(0.1)
        response = await client.request("play", {"script": "2"})
        assert response["error"]["code"] == -32012 and response["error"]["data"]["reason"] == "queue full"
        assert (await client.response_to("queued"))["error"]["data"]["kind"] == "timeout"


async def test_unreachable_redis_answers_32012(start_server, world: World) -> None:
    from tests.helpers.processes import free_port

    server = start_server(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    async with await signed_in(server, world, world.member) as client:
        response = await client.request("play", {"script": "1"})
        assert response["error"]["code"] == -32012
        assert response["error"]["data"]["reason"] == "queue unavailable"
        assert (await client.call("whoami"))["authenticated"] is True


# --- embedded mode ------------------------------------------------------------------------------


async def test_embedded_mode_runs_scripts_in_process(start_server, sqlite_world: World) -> None:
    server = start_server(world=sqlite_world)  # no REDIS_URL, SQLite: `make run`'s setup
    async with await signed_in(server, sqlite_world, sqlite_world.member) as client:
        result = await client.call(
            "play", {"script": 'db::put("embedded", "k", #{n: 1}); db::get("embedded", "k")'}
        )
        assert result["value"] == {"n": 1}
        error = await play_error(client, "loop {}", timeout_ms=300)
        assert error["kind"] in ("timeout", "operations")
        assert (await client.call("play", {"script": "CALLER_ROLE"}))["output"] == "member"


async def test_connections_and_workers_ride_out_a_redis_restart(
    start_server, start_workers, world: World, tmp_path
) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        settings = {"REDIS_URL": redis.url}
        start_workers(**settings)
        server = start_server(**settings)
        async with await signed_in(server, world, world.member) as client:
            assert (await client.call("play", {"script": "1"}, timeout=15))["value"] == 1
            redis.stop()
            response = await client.request("play", {"script": "2"})
            assert response["error"]["code"] == -32012
            assert (await client.call("whoami"))["authenticated"] is True  # the socket stayed open
            redis.start()
            for _ in range(50):  # the worker and the layer reconnect with backoff
                response = await client.request("play", {"script": "3"}, timeout=15)
                if "result" in response:
                    break
                await asyncio.sleep(0.2)
            assert response["result"]["value"] == 3
    finally:
        redis.stop()
    # channels-redis' receive task logs a traceback per second of outage; ours is a WARNING line.
    assert "Traceback" not in start_server.started[-1].output()


async def test_sigterm_lets_the_worker_finish_the_job_in_hand(
    start_server, start_workers, world: World, redis_server: RedisServer
) -> None:
    settings = {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e-term:{uuid.uuid4().hex[:8]}"}
    worker = start_workers(**settings)
    server = start_server(**settings)
    async with await signed_in(server, world, world.member) as client:
        assert (await client.call("play", {"script": "1"}, timeout=15))["value"] == 1  # the worker is up
        params = {"script": "let n = 0;\nloop { n += 1; }", "timeout_ms": 1500}
        await client.send_json({"jsonrpc": "2.0", "method": "play", "params": params, "id": "in-hand"})
        await asyncio.sleep(0.4)
        worker.signal(signal.SIGTERM)
        answer = await client.response_to("in-hand", timeout=5)
    # The worker's own timeout error (it carries a position; the consumer's would not).
    assert answer["error"]["data"]["kind"] in ("timeout", "operations")
    assert answer["error"]["data"]["line"] == 2
    assert worker.process.wait(10) == 0
    assert "stopped after 2 jobs" in worker.output()
