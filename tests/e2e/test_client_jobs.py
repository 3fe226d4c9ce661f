"""Jobs through `circles_client` (library and command line) against the real server: uvicorn, Redis,
two real `rhai_worker` processes and PostgreSQL, and once in embedded mode.

The client's side of issue 12: every call of the wire contract through the library, `Job.wait()`
resolved by the final notification, live logs, `stop()`, prerequisites, a job that outlives its
socket (read from a second ASGI process), a subscription carried over a server restart (the job
finished while the client was away), other callers' jobs, the limits with their errors, and
`circles job run|list|watch` as a subprocess.

Written before the server side existed (the fake in tests/client/fake_jobs.py speaks the same
contract); run it once both sides are merged.
"""

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from circles_client import (
    CircleClient,
    ExecutionError,
    Forbidden,
    InvalidParams,
    JobNotFound,
    RateLimited,
    SigningKey,
    WrongJobState,
    connect,
)
from tests.e2e.conftest import World
from tests.helpers.keys import WalletKey
from tests.helpers.processes import PYTHON, REPO, server_env, start_asgi_server
from tests.helpers.redis_server import RedisServer

pytestmark = pytest.mark.e2e

# A loop of about `n` iterations between prints: Rhai has no clock and no sleep (docs/SCRIPTING.md).
SPIN = "let i = 0; while i < {n} {{ i += 1; }}"
# Workers whose scripts may run long (the default operations budget ends a busy loop within ~0.1 s).
LONG_RUNS = {"CIRCLES_SCRIPT_MAX_OPERATIONS": "1000000000000"}
FINAL = ("finished", "error")


def key_of(wallet: WalletKey) -> SigningKey:
    return SigningKey.from_hex(wallet.private_hex)


def printing(lines: int, spin: int = 400_000) -> str:
    """A job that prints `lines` lines about `spin` iterations apart, then answers "done"."""
    return f'for n in 0..{lines} {{ print(`line ${{n}}`); {SPIN.format(n=spin)} }} "done"'


@pytest.fixture(scope="module")
def queue_settings(redis_server: RedisServer) -> dict[str, str]:
    return {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e-client-jobs:{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="module")
def workers(start_workers, queue_settings):
    return [start_workers(**queue_settings, **LONG_RUNS, concurrency=2, job_slots=1) for _ in range(2)]


@pytest.fixture(scope="module")
def server(start_server, queue_settings, workers, world: World) -> Iterator[str]:
    url = start_server(**queue_settings)
    yield url
    asyncio.run(clear_every_job(url, world))  # later modules share the circle (the console lists them)


async def clear_every_job(url: str, world: World) -> None:
    """Remove the jobs this module left in the shared circle (the owner clears the circle's)."""
    async with connect(f"{url}/{world.circle}", key_of(world.owner)) as owner:
        await owner.clear_all_jobs()


@pytest.fixture(scope="module")
def second_server(start_server, queue_settings, workers) -> str:
    """Another ASGI process on the same database, Redis and workers."""
    return start_server(**queue_settings)


# --- the lifecycle ------------------------------------------------------------------------------


async def test_create_wait_output_logs_list_delete(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        job = await client.create_job(
            'print("hello"); ENV_VARS.who + "!"', timeout=30, env_vars={"who": "ann"}
        )
        assert uuid.UUID(job.id).version == 4
        assert await job.status() == "created"
        with pytest.raises(WrongJobState) as unfinished:
            await job.output()
        assert unfinished.value.status == "created"

        state = await asyncio.wait_for(job.wait(start=True), 30)
        assert state["status"] == "finished" and state["output"] == "ann!" and state["value"] == "ann!"
        assert state["error"] is None and state["job_id"] == job.id
        assert await job.output() == "ann!" and await job.logs() == "hello"

        row = await job.get()
        assert row["caller_id"] == world.member.pubkey and row["context_id"] == world.circle
        assert row["timeout"] == 30 and row["env_vars"] == {"who": "ann"} and row["prerequisites"] == []
        assert row["started_at"] and row["finished_at"] and row["elapsed_ms"] >= 0 and row["logs_size"] == 5
        assert row["created_at"].endswith("Z")

        with pytest.raises(WrongJobState) as again:
            await job.start()
        assert again.value.status == "finished"
        assert job.id in [j["id"] for j in await client.list_jobs(status="finished")]
        await job.delete()
        with pytest.raises(JobNotFound) as gone:
            await job.status()
        assert gone.value.job_id == job.id
        assert client.subscriptions == 0  # wait() unsubscribed


async def test_run_job_answers_the_output_or_raises_as_play(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        assert await client.run_job("40 + 2") == "42"
        with pytest.raises(ExecutionError) as failed:
            await client.run_job("let a = 1;\na + true")
        assert failed.value.kind == "runtime" and failed.value.line == 2


async def test_a_failed_job_ends_error_with_its_position(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        job = await client.create_job("let x = 1;\nx.nope()")
        with pytest.raises(ExecutionError) as failed:
            await asyncio.wait_for(job.result(start=True), 30)
        assert failed.value.line == 2 and failed.value.kind == "runtime"
        assert (await job.get())["error"]["line"] == 2


async def test_follow_shows_the_logs_while_it_runs(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        job = await client.create_job(printing(4), timeout=60)
        states = []
        async for state in job.follow(start=True):
            states.append(state)
        statuses = [s["status"] for s in states]
        assert statuses[0] == "created" and statuses[-1] == "finished" and "started" in statuses
        pushed = "\n".join(s["logs"] for s in states if s.get("logs"))
        assert pushed.startswith("line 0")  # at least the first lines came before the end
        assert await job.logs() == "\n".join(f"line {n}" for n in range(4))


async def test_stop_of_a_loop_is_quick_and_the_worker_stays_healthy(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        job = await client.create_job("loop {}", timeout=600)
        async for state in job.follow(start=True):
            if state["status"] == "started":
                break
        started = time.monotonic()
        await job.stop()
        answered = time.monotonic() - started
        state = await asyncio.wait_for(job.wait(), 5)
        stopped = time.monotonic() - started
        assert answered < 0.5 and stopped < 0.5, (answered, stopped)
        assert state["status"] == "error" and state["error"]["kind"] == "stopped"
        assert (await client.play("1 + 1"))["value"] == 2
        assert await client.run_job("2 + 2") == "4"


async def test_a_job_not_started_never_runs_once_stopped(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        job = await client.create_job('db::put("jobs-e2e", "stopped-early", #{ ran: true }); 1')
        await job.stop()
        state = await asyncio.wait_for(job.wait(), 10)
        assert state["status"] == "error" and state["error"]["kind"] == "stopped"
        assert (await client.play('db::get("jobs-e2e", "stopped-early")'))["value"] is None


async def test_a_chain_of_prerequisites_runs_in_order_and_a_failure_propagates(
    server: str, world: World
) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        first = await client.create_job(f"{SPIN.format(n=300_000)} 1")
        second = await client.create_job("2", prerequisites=[first])
        third = await client.create_job("3", prerequisites=[second.id])
        for job in (third, second, first):  # the last one first: it must wait
            await job.start()
        finals = await asyncio.wait_for(asyncio.gather(*(job.wait() for job in (first, second, third))), 60)
        assert [s["output"] for s in finals] == ["1", "2", "3"]
        rows = [await job.get() for job in (first, second, third)]
        assert (
            rows[0]["finished_at"] <= rows[1]["started_at"]
            and rows[1]["finished_at"] <= rows[2]["started_at"]
        )

        broken = await client.create_job('throw "no"')
        after = await client.create_job("1", prerequisites=[broken])
        await after.start()
        await broken.start()
        state = await asyncio.wait_for(after.wait(), 30)
        assert state["status"] == "error" and state["error"]["kind"] == "prerequisite"
        assert broken.id in state["error"]["message"]


# --- outliving the socket -----------------------------------------------------------------------


async def test_a_job_outlives_its_socket_and_is_read_from_another_server(
    server: str, second_server: str, world: World
) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        job = await client.create_job(printing(3))
        await job.start()
    async with connect(f"{second_server}/{world.circle}", key_of(world.member)) as client:
        state = await asyncio.wait_for(client.job(job.id).wait(), 60)
        assert state["status"] == "finished" and state["output"] == "done"


async def test_wait_survives_a_server_restart_while_the_job_finishes(
    world: World, queue_settings, workers, tmp_path
) -> None:
    env = server_env(world.database_url, **queue_settings)
    process, port = start_asgi_server("uvicorn", env, tmp_path / "1.log")
    client = CircleClient(
        f"ws://127.0.0.1:{port}/{world.circle}",
        key_of(world.member),
        reconnect_delay=0.1,
        reconnect_max_delay=0.5,
    )
    try:
        await client.open()
        job = await client.create_job(printing(3, spin=600_000), timeout=120)
        waiting = asyncio.create_task(job.wait(start=True))
        while (await job.status()) != "started":
            await asyncio.sleep(0.05)
        process.stop()  # the job goes on on its worker and finishes while no server is up
        async with asyncio.timeout(10):
            while client.connected:
                await asyncio.sleep(0.05)
        await asyncio.sleep(3)  # the job (about 1.5 s of work) finishes meanwhile
        assert not waiting.done()
        process, _ = start_asgi_server("uvicorn", env, tmp_path / "2.log", port=port)
        state = await asyncio.wait_for(waiting, 30)  # subscribed again (a new id), then read again
        assert state["status"] == "finished" and state["output"] == "done"
        assert client.reconnects == 1 and client.subscriptions == 0
    finally:
        await client.close()
        process.stop()


async def test_a_subscription_gets_a_new_id_after_a_restart(
    world: World, queue_settings, workers, tmp_path
) -> None:
    env = server_env(world.database_url, **queue_settings)
    process, port = start_asgi_server("uvicorn", env, tmp_path / "1.log")
    client = CircleClient(
        f"ws://127.0.0.1:{port}/{world.circle}",
        key_of(world.member),
        reconnect_delay=0.1,
        reconnect_max_delay=0.5,
    )
    try:
        await client.open()
        subscription = await client.subscribe("jobs")
        first_id = subscription.id
        assert first_id.startswith("0x") and len(first_id) == 34
        process.stop()
        process, _ = start_asgi_server("uvicorn", env, tmp_path / "2.log", port=port)
        async with asyncio.timeout(20):
            while client.reconnects < 1 or not client.connected:
                await asyncio.sleep(0.05)
        assert subscription.id != first_id and subscription.subscribed == 2
        job = await client.create_job("7")
        await job.start()
        async with asyncio.timeout(30):
            async for result in subscription:
                if result["job_id"] == job.id and result["status"] in FINAL:
                    assert result["output"] == "7"
                    break
    finally:
        await client.close()
        process.stop()


# --- who sees what ------------------------------------------------------------------------------


async def test_another_callers_job_is_invisible_and_the_owner_sees_all(server: str, world: World) -> None:
    url = f"{server}/{world.open_circle}"  # guests may play here: two callers without a role
    async with connect(url, key_of(world.guest)) as guest, connect(url, key_of(world.member)) as other:
        job = await guest.create_job("1")
        for attempt in (other.job(job.id).status, other.job(job.id).get, other.job(job.id).stop):
            with pytest.raises(JobNotFound):
                await attempt()
        with pytest.raises(JobNotFound):
            await other.job(job.id).wait()
        assert job.id not in [j["id"] for j in await other.list_jobs()]
        with pytest.raises(Forbidden):
            await other.list_jobs(all_jobs=True)
        with pytest.raises(Forbidden):
            await other.subscribe("jobs", all=True)
        async with connect(url, key_of(world.open_owner)) as owner:
            assert job.id in [j["id"] for j in await owner.list_jobs(all_jobs=True)]
            watching = await owner.subscribe("jobs", all=True)
            await job.start()
            async with asyncio.timeout(30):
                async for result in watching:
                    if result["job_id"] == job.id and result["status"] in FINAL:
                        break
            await owner.delete_job(job.id)
        with pytest.raises(JobNotFound):
            await job.status()


# --- the limits ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tight_server(start_server, queue_settings, workers) -> str:
    return start_server(
        **queue_settings, CIRCLES_JOBS_MAX_ACTIVE_PER_CALLER="2", CIRCLES_MAX_SUBSCRIPTIONS_PER_CONNECTION="3"
    )


async def test_the_limits_each_with_its_error(tight_server: str, world: World) -> None:
    async with connect(f"{tight_server}/{world.circle}", key_of(world.member)) as client:
        for params, field in (
            ({"timeout": 0}, "timeout"),
            ({"timeout": 3601}, "timeout"),
            ({"env_vars": {"1bad": "x"}}, "env_vars"),
            ({"env_vars": {"BIG": "x" * 4097}}, "env_vars"),
            ({"env_vars": {f"V{n}": "x" for n in range(33)}}, "env_vars"),
            ({"prerequisites": [str(uuid.uuid4()) for _ in range(17)]}, "prerequisites"),
            ({"prerequisites": [str(uuid.uuid4())]}, "prerequisites"),
        ):
            with pytest.raises(InvalidParams) as refused:
                await client.create_job("1", **params)
            assert (refused.value.field or "").startswith(field), (params, refused.value.data)

        running = [await client.create_job("loop {}", timeout=60) for _ in range(3)]
        await running[0].start()
        await running[1].start()
        with pytest.raises(RateLimited) as busy:
            await running[2].start()
        assert busy.value.reason == "too many active jobs for this key"
        for job in running[:2]:
            await job.stop()
            await asyncio.wait_for(job.wait(), 10)
        await running[2].start()  # room again
        await running[2].stop()

        subscriptions = [await client.subscribe("jobs") for _ in range(3)]
        with pytest.raises(RateLimited) as crowded:
            await client.subscribe("jobs")
        assert crowded.value.reason == "too many subscriptions"
        await subscriptions[0].close()
        await (await client.subscribe("jobs")).close()


# --- the command line ---------------------------------------------------------------------------


def circles(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("CIRCLES_")}
    return subprocess.run(
        [PYTHON, "-m", "circles_client", *args],
        env={**clean, "CIRCLES_HISTORY": os.devnull, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_job_run_list_and_a_failure(server: str, world: World) -> None:
    env = {"CIRCLES_URL": f"{server}/{world.circle}", "CIRCLES_KEY": world.member.private_hex}
    done = circles("job", "run", "-e", printing(3), "--time-limit", "60", **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    err = done.stderr.splitlines()
    assert [line for line in err if line.startswith("line ")] == ["line 0", "line 1", "line 2"]
    assert any(line.endswith(": started") for line in err) and " finished after " in err[-1]

    failed = circles("job", "run", "-e", 'throw "bad"', **env)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.splitlines()[-1].startswith("error: ExecutionError: ")

    listed = circles("job", "list", "--limit", "2", **env)
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)
    assert [j["status"] for j in jobs] == ["error", "finished"]

    created = circles("job", "create", "-e", "5", **env)
    job_id = created.stdout.strip()
    watcher = subprocess.Popen(
        [PYTHON, "-m", "circles_client", "job", "watch", job_id],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("CIRCLES_")}, **env},
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        assert circles("job", "start", job_id, **env).returncode == 0
        out, _ = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    states = [json.loads(line) for line in out.splitlines()]
    assert states[0]["status"] == "created" and states[-1]["status"] == "finished"
    assert states[-1]["output"] == "5"
    assert circles("job", "output", job_id, **env).stdout == "5\n"
    assert circles("job", "delete", job_id, **env).returncode == 0


# --- embedded mode --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded_server(start_server, sqlite_world: World) -> str:
    return start_server(world=sqlite_world, **LONG_RUNS)


async def test_the_same_lifecycle_in_embedded_mode(embedded_server: str, sqlite_world: World) -> None:
    async with connect(f"{embedded_server}/{sqlite_world.circle}", key_of(sqlite_world.member)) as client:
        job = await client.create_job(printing(2, spin=100_000))
        state = await asyncio.wait_for(job.wait(start=True), 30)
        assert state["status"] == "finished" and state["output"] == "done"
        assert await job.logs() == "line 0\nline 1"
        looping = await client.create_job("loop {}", timeout=600)
        async for state in looping.follow(start=True):
            if state["status"] == "started":
                break
        started = time.monotonic()
        await looping.stop()
        state = await asyncio.wait_for(looping.wait(), 5)
        assert time.monotonic() - started < 0.5 and state["error"]["kind"] == "stopped"
        assert await client.run_job("6 * 7") == "42"
        assert await client.clear_all_jobs() >= 2
