"""Fairness of the executor end to end: real servers, real workers, real WebSockets, no mocks.

One member (the attacker) keeps long plays in flight from several connections; another member
of the same circle (the victim) plays `1`. The proofs are structural: the victim's answer comes
while the attacker's long plays are still running, the attacker's plays over its share wait
and are answered -32029 `too many runs in flight for this key`, and a closed connection's
running play is stopped (its write rolled back, its thread or worker free for the next play
long before that play's own timeout).
"""

import asyncio
import uuid

import pytest

from tests.e2e.conftest import World
from tests.helpers.keys import WalletKey
from tests.helpers.redis_server import RedisServer
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e

LONG = {"script": "loop {}", "timeout_ms": 10_000}
WAITING = {"script": "loop {}", "timeout_ms": 2_000}  # gives up in the line before LONG ends
# `loop {}` would stop at the default 5,000,000 operations within ~0.1 s: long plays need more.
LONG_RUNS = {"CIRCLES_SCRIPT_MAX_OPERATIONS": str(10**12)}
OVER_THE_KEYS_SHARE = {"reason": "too many runs in flight for this key"}
LINE_FULL = {"reason": "too many plays waiting for this key"}
ONE_WAITING = {"CIRCLES_MAX_WAITING_PER_CALLER": "1"}


async def signed_in(server: str, circle: str, key: WalletKey) -> RpcClient:
    client = await RpcClient.connect(f"{server}/{circle}")
    await client.sign_in(key)
    return client


async def send_play(client: RpcClient, params: dict, request_id: str) -> None:
    await client.send_json({"jsonrpc": "2.0", "method": "play", "params": params, "id": request_id})


async def victim_answers_while_the_attacker_runs(server: str, world: World) -> None:
    """The attacker holds long plays on 3 connections; the victim's `play("1")` is answered first."""
    attackers = [await signed_in(server, world.circle, world.member) for _ in range(3)]
    victim = await signed_in(server, world.circle, world.admin)
    order: list[str] = []
    try:
        for index, attacker in enumerate(attackers):
            await send_play(attacker, LONG if index == 0 else WAITING, f"long-{index}")
        # Over the key's share (1 run in flight): waits in the key's own line, then -32029.
        excess = await attackers[0].request("play", {"script": "2", "timeout_ms": 300}, timeout=10)
        assert excess["error"]["code"] == -32029 and excess["error"]["data"] == OVER_THE_KEYS_SHARE

        async def long_answer(index: int) -> dict:
            response = await attackers[index].response_to(f"long-{index}", timeout=30)
            order.append(f"long-{index}")
            return response

        longs = [asyncio.ensure_future(long_answer(i)) for i in range(3)]
        for _ in range(3):  # every answer of the victim comes while the attacker's plays are in flight
            assert (await victim.call("play", {"script": "1"}, timeout=30))["value"] == 1
            order.append("victim")
        answers = await asyncio.gather(*longs)
        assert order.index("long-0") > 2, order  # the running play ended after the victim's answers
        ran = [a for a in answers if "error" in a and a["error"]["code"] == -32000]
        waited = [a for a in answers if "error" in a and a["error"]["code"] == -32029]
        assert len(ran) == 1 and ran[0]["error"]["data"]["kind"] in ("timeout", "operations"), answers
        assert len(waited) == 2 and all(a["error"]["data"] == OVER_THE_KEYS_SHARE for a in waited)
    finally:
        for client in [*attackers, victim]:
            await client.close()


async def a_closed_connection_stops_its_runs(server: str, world: World, tag: str) -> None:
    """Two long writing plays of one key (one running, one waiting for the runner); both connections
    close; the write is gone and the only runner takes the victim's play long before 30 s."""
    writes = [
        {"script": f'db::put("{tag}", "k{i}", #{{a: 1}}); loop {{}}', "timeout_ms": 30_000} for i in range(2)
    ]
    doomed = [await signed_in(server, world.circle, world.member) for _ in range(2)]
    for index, client in enumerate(doomed):
        await send_play(client, writes[index], f"w{index}")
    async with await signed_in(server, world.circle, world.member) as same_key:
        # Both are in flight: the key's share (2) is taken, so a third play waits and is refused.
        refused = await same_key.request("play", {"script": "1", "timeout_ms": 300}, timeout=10)
        assert refused["error"]["data"] == OVER_THE_KEYS_SHARE, refused
        for client in doomed:
            await client.close()
        # One runner only: the victim's play could not run before 30 s unless both runs were stopped.
        async with await signed_in(server, world.circle, world.admin) as victim:
            check = f'[db::get("{tag}", "k0"), db::get("{tag}", "k1")]'
            result = await victim.call("play", {"script": check, "timeout_ms": 10_000}, timeout=15)
            assert result["value"] == [None, None]
        # And the key's share was given back: its next play runs.
        assert (await same_key.call("play", {"script": "3", "timeout_ms": 10_000}, timeout=15))["value"] == 3


async def a_full_line_refuses_at_once(server: str, world: World) -> None:
    """Share 1 and a line of 1: of three 10 s plays sent together, one runs, one waits, and the
    third is answered -32029 `too many plays waiting for this key` first, while the others are
    still running and waiting (an unbounded line kept it until its deadline, as `... in flight`)."""
    async with await signed_in(server, world.circle, world.member) as client:
        for index in range(3):
            await send_play(client, LONG, f"p{index}")
        first = await client.recv_json(timeout=30)
        assert first.get("error", {}).get("code") == -32029, first
        assert first["error"]["data"] == LINE_FULL and first["id"] in ("p1", "p2"), first
    # Closing the connection stopped the running play and dropped the waiting one: the key's
    # next play runs at once.
    async with await signed_in(server, world.circle, world.member) as client:
        assert (await client.call("play", {"script": "4", "timeout_ms": 10_000}, timeout=15))["value"] == 4


# --- embedded mode (no REDIS_URL, SQLite) -------------------------------------------------------


async def test_embedded_one_member_cannot_hold_every_thread(start_server, sqlite_world: World) -> None:
    server = start_server(world=sqlite_world, **LONG_RUNS)  # the defaults: 2 threads, 1 run per key
    await victim_answers_while_the_attacker_runs(server, sqlite_world)


async def test_embedded_disconnect_stops_the_running_play(start_server, sqlite_world: World) -> None:
    server = start_server(
        world=sqlite_world,
        **LONG_RUNS,
        CIRCLES_LOCAL_EXECUTOR_THREADS="1",
        CIRCLES_MAX_RUNS_PER_CALLER="2",
        CIRCLES_MAX_RUNS_PER_CIRCLE="0",
    )
    await a_closed_connection_stops_its_runs(server, sqlite_world, "gone-embedded")


async def test_embedded_a_full_line_refuses_at_once(start_server, sqlite_world: World) -> None:
    server = start_server(world=sqlite_world, **LONG_RUNS, **ONE_WAITING)
    await a_full_line_refuses_at_once(server, sqlite_world)


# --- Redis and real workers ---------------------------------------------------------------------


def queue(redis_server: RedisServer) -> dict[str, str]:
    stream = f"e2e-fair:{uuid.uuid4().hex[:8]}"
    return {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": stream, **LONG_RUNS}


async def test_redis_one_member_cannot_hold_every_worker(
    start_server, start_workers, redis_server: RedisServer, world: World
) -> None:
    settings = queue(redis_server)
    start_workers(concurrency=2, **settings)
    # Two ASGI processes: the key's share is counted in Redis, across both.
    servers = [start_server(**settings), start_server(**settings)]
    async with await signed_in(servers[0], world.circle, world.member) as client:
        assert (await client.call("play", {"script": "1"}, timeout=30))["value"] == 1  # workers are up
    attackers = [await signed_in(servers[i % 2], world.circle, world.member) for i in range(2)]
    try:
        await send_play(attackers[0], LONG, "long")
        other = await attackers[1].request("play", {"script": "2", "timeout_ms": 300}, timeout=10)
        assert other["error"]["data"] == OVER_THE_KEYS_SHARE  # over the share, from the other process
    finally:
        for client in attackers:
            await client.close()  # (their runs are stopped: the next test in line gets the workers)
    await victim_answers_while_the_attacker_runs(servers[1], world)


async def test_redis_disconnect_stops_the_running_play_and_drops_the_queued_one(
    start_server, start_workers, redis_server: RedisServer, world: World
) -> None:
    settings = queue(redis_server)
    start_workers(concurrency=1, **settings)
    server = start_server(**settings, CIRCLES_MAX_RUNS_PER_CALLER="2", CIRCLES_MAX_RUNS_PER_CIRCLE="0")
    async with await signed_in(server, world.circle, world.owner) as client:
        assert (await client.call("play", {"script": "1"}, timeout=30))["value"] == 1  # the worker is up
    await a_closed_connection_stops_its_runs(server, world, "gone-redis")


async def test_redis_a_full_line_refuses_at_once(
    start_server, start_workers, redis_server: RedisServer, world: World
) -> None:
    settings = queue(redis_server)
    start_workers(concurrency=2, **settings)
    server = start_server(**settings, **ONE_WAITING)
    async with await signed_in(server, world.circle, world.owner) as client:
        assert (await client.call("play", {"script": "1"}, timeout=30))["value"] == 1  # workers are up
    await a_full_line_refuses_at_once(server, world)
