"""SIGTERM to `circleproject.serve`: in-flight plays are answered, new requests get -32012, then 1001."""

import asyncio
import signal
import uuid

import pytest
import websockets

from tests.e2e.conftest import World
from tests.helpers.processes import server_env, start_asgi_server
from tests.helpers.redis_server import RedisServer
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e


async def test_sigterm_answers_in_flight_plays_then_closes_1001(
    start_workers, redis_server: RedisServer, world: World, tmp_path
) -> None:
    settings = {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"drain:{uuid.uuid4().hex[:8]}"}
    start_workers(**settings, CIRCLES_SCRIPT_MAX_OPERATIONS="1000000000000")  # `loop {}` runs to its timeout
    process, port = start_asgi_server("serve", server_env(world.database_url, **settings), tmp_path / "s.log")
    try:
        client = await RpcClient.connect(f"ws://127.0.0.1:{port}/{world.circle}")
        await client.sign_in(world.member)
        await client.call("play", {"script": "1"}, timeout=30)  # the worker is up and reading
        play = {"script": "loop {}", "timeout_ms": 1500}
        await client.send_json({"jsonrpc": "2.0", "method": "play", "params": play, "id": "long"})
        await asyncio.sleep(0.3)
        process.signal(signal.SIGTERM)
        await asyncio.sleep(0.5)  # the drain has started: the long play is still running
        await client.send_json({"jsonrpc": "2.0", "method": "whoami", "id": "late"})

        late = await client.response_to("late", timeout=5)
        assert late["error"]["code"] == -32012, late
        assert late["error"]["data"] == {"reason": "server shutting down"}
        long = await client.response_to("long", timeout=10)
        assert long["error"]["code"] == -32000 and long["error"]["data"]["kind"] == "timeout", long
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.recv_json(timeout=5)
        assert closed.value.rcvd.code == 1001 and closed.value.rcvd.reason == "server shutting down"
        assert process.process.wait(15) == 0, process.output()
    finally:
        process.stop()


async def test_sigterm_with_nothing_in_flight_closes_at_once(world: World, tmp_path) -> None:
    process, port = start_asgi_server("serve", server_env(world.database_url), tmp_path / "s.log")
    try:
        client = await RpcClient.connect(f"ws://127.0.0.1:{port}/{world.circle}")
        await client.call("whoami")
        process.signal(signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.recv_json(timeout=5)
        assert closed.value.rcvd.code == 1001
        assert process.process.wait(15) == 0, process.output()
    finally:
        process.stop()


async def test_embedded_mode_answers_a_play_still_running_after_the_grace(world: World, tmp_path) -> None:
    env = server_env(
        world.database_url,
        CIRCLES_SHUTDOWN_GRACE_SECONDS="0.5",
        CIRCLES_SCRIPT_MAX_OPERATIONS="1000000000000",
    )  # no REDIS_URL: the script runs in the server's own thread pool
    process, port = start_asgi_server("serve", env, tmp_path / "s.log")
    try:
        client = await RpcClient.connect(f"ws://127.0.0.1:{port}/{world.circle}")
        await client.sign_in(world.member)
        play = {"script": "loop {}", "timeout_ms": 5000}
        await client.send_json({"jsonrpc": "2.0", "method": "play", "params": play, "id": "long"})
        await asyncio.sleep(0.3)
        process.signal(signal.SIGTERM)
        long = await client.response_to("long", timeout=4)  # the grace, then the answer: not silence
        assert long["error"]["code"] == -32012 and long["error"]["data"] == {"reason": "server shutting down"}
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.recv_json(timeout=5)
        assert closed.value.rcvd.code == 1001
        assert process.process.wait(15) == 0, process.output()
    finally:
        process.stop()


async def test_while_its_processes_drain_the_supervisor_refuses_new_connections(
    world: World, tmp_path
) -> None:
    """`serve --workers 2` under SIGTERM: nothing accepts on the port any more, so a connection the
    kernel queued there would be reset when the supervisor exits. New clients are refused at once."""
    env = server_env(
        world.database_url,
        CIRCLES_WORKERS="2",
        CIRCLES_SHUTDOWN_GRACE_SECONDS="3",
        CIRCLES_SCRIPT_MAX_OPERATIONS="1000000000000",
    )  # embedded: the play runs in the server process, which drains until the grace ends
    process, port = start_asgi_server("serve", env, tmp_path / "s.log")
    try:
        client = await RpcClient.connect(f"ws://127.0.0.1:{port}/{world.circle}")
        await client.sign_in(world.member)
        play = {"script": "loop {}", "timeout_ms": 6000}
        await client.send_json({"jsonrpc": "2.0", "method": "play", "params": play, "id": "long"})
        await asyncio.sleep(0.3)
        process.signal(signal.SIGTERM)
        long = asyncio.ensure_future(client.response_to("long", timeout=10))
        refused = False
        while not long.done() and not refused:  # the drain lasts until the play is answered
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except ConnectionRefusedError:
                refused = True
            else:
                writer.close()  # accepted by a process that had not closed its socket yet
                await asyncio.sleep(0.05)
        assert refused, "a new connection was accepted into the queue while the processes drained"
        assert not long.done()
        assert (await long)["error"]["code"] == -32012
        assert process.process.wait(15) == 0, process.output()
    finally:
        process.stop()
