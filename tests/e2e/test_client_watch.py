"""Live records through `circles_client` (library and command line) against the real server: two
uvicorn processes, Redis, two real `rhai_worker` processes and PostgreSQL.

The client's side of issue 13: `client.watch()` sees another member's writes made through the
other ASGI process, in order, with a prefix too; it resumes across a restart of its own server
with exactly the changes it missed (each once); a caller who may not read is refused; and
`circles watch` as a subprocess prints a write made by another client, and ends on Ctrl+C with
status 130. The fake that speaks the same contract: tests/client/fake_records.py.
"""

import asyncio
import json
import os
import signal
import subprocess
import uuid

import pytest

from circles_client import AuthenticationRequired, CircleClient, Forbidden, SigningKey, connect
from tests.e2e.conftest import World
from tests.helpers.keys import WalletKey
from tests.helpers.processes import PYTHON, REPO, server_env, start_asgi_server
from tests.helpers.redis_server import RedisServer

pytestmark = pytest.mark.e2e


def key_of(wallet: WalletKey) -> SigningKey:
    return SigningKey.from_hex(wallet.private_hex)


def fresh() -> str:
    """A collection of the test's own: the e2e database is shared by the session."""
    return f"watch-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def queue_settings(redis_server: RedisServer) -> dict[str, str]:
    return {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e-client-watch:{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="module")
def workers(start_workers, queue_settings):
    return [start_workers(**queue_settings) for _ in range(2)]


@pytest.fixture(scope="module")
def servers(start_server, queue_settings, workers) -> list[str]:
    return [start_server(**queue_settings) for _ in range(2)]


async def put(client: CircleClient, collection: str, key: str, data: str = "#{n: 1}") -> None:
    await client.play(f'db::put("{collection}", "{key}", {data}); 0')


async def delete(client: CircleClient, collection: str, key: str) -> None:
    await client.play(f'db::delete("{collection}", "{key}"); 0')


async def test_a_member_sees_another_members_writes_made_through_the_other_process(
    servers: list[str], world: World
) -> None:
    collection = fresh()
    async with (
        connect(f"{servers[0]}/{world.circle}", key_of(world.member)) as watcher,
        connect(f"{servers[1]}/{world.circle}", key_of(world.admin)) as writer,
    ):
        async with watcher.watch(collection) as everything, watcher.watch(collection, prefix="x:") as mine:
            assert everything.last_seq == (await watcher.records_head())["seq"]  # read just before
            await put(writer, collection, "a", '#{n: 1, s: "x"}')
            await put(writer, collection, "x:1")
            await delete(writer, collection, "a")
            changes = [await everything.next(timeout=20) for _ in range(3)]
            (filtered,) = [await mine.next(timeout=20)]
        assert [(c["key"], c["op"]) for c in changes] == [("a", "put"), ("x:1", "put"), ("a", "delete")]
        assert [c["seq"] for c in changes] == list(range(changes[0]["seq"], changes[0]["seq"] + 3))
        first = changes[0]
        assert first["collection"] == collection and first["data"] == {"n": 1, "s": "x"}
        assert first["version"] == 1 and first["updated_by"] == world.admin.pubkey and first["source"] == "ws"
        assert changes[2]["version"] == 0 and changes[2]["data"] is None
        assert filtered == changes[1]
        assert watcher.subscriptions == 0  # both closed by their `async with`


async def test_a_watch_resumes_across_a_restart_of_its_server_with_exactly_what_it_missed(
    servers: list[str], world: World, queue_settings, workers, tmp_path
) -> None:
    collection = fresh()
    env = server_env(world.database_url, **queue_settings)
    process, port = start_asgi_server("uvicorn", env, tmp_path / "1.log")
    watcher = CircleClient(
        f"ws://127.0.0.1:{port}/{world.circle}",
        key_of(world.member),
        reconnect_delay=0.1,
        reconnect_max_delay=0.5,
    )
    try:
        async with connect(f"{servers[1]}/{world.circle}", key_of(world.admin)) as writer:
            await watcher.open()
            watch = await watcher.watch(collection).start()
            await put(writer, collection, "k0")
            await put(writer, collection, "k1")
            assert (await watch.next(timeout=20))["key"] == "k0"  # k1 arrived but is not read yet
            assert watch.subscription is not None
            async with asyncio.timeout(20):
                while watch.subscription.pending() < 1:
                    await asyncio.sleep(0.02)
            process.stop()
            for index in range(2, 5):  # written while the watcher's server is down
                await put(writer, collection, f"k{index}")
            await put(writer, fresh(), "elsewhere")  # another collection's: a gap in seq, not a miss
            process, _ = start_asgi_server("uvicorn", env, tmp_path / "2.log", port=port)
            rest = [await watch.next(timeout=30) for _ in range(4)]
            assert [c["key"] for c in rest] == ["k1", "k2", "k3", "k4"]
            await put(writer, collection, "k5")  # then live, on the new connection
            assert (await watch.next(timeout=20))["key"] == "k5"
            assert watcher.reconnects == 1
            # k1 was read from the queue while the server was down, so the watch subscribed again
            # after k1 (had it not been read, since = k0 and k1 would come again and be dropped).
            assert watch.duplicates == 0
            with pytest.raises(TimeoutError):
                await watch.next(timeout=0.5)  # nothing twice, nothing more
            await watch.close()
    finally:
        await watcher.close()
        process.stop()


async def test_who_may_not_read_is_refused(servers: list[str], world: World) -> None:
    async with connect(f"{servers[0]}/{world.circle}", key_of(world.guest)) as guest:
        with pytest.raises(Forbidden):
            await guest.watch(fresh()).start()
        with pytest.raises(Forbidden):
            await guest.watch(fresh(), since=0).start()
        assert guest.subscriptions == 0
    async with connect(f"{servers[0]}/{world.circle}") as signed_out:
        with pytest.raises(AuthenticationRequired):
            await signed_out.watch(fresh()).start()


def watch_process(*args: str, **env: str) -> subprocess.Popen:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("CIRCLES_")}
    return subprocess.Popen(
        [PYTHON, "-m", "circles_client", "watch", *args],
        env={**clean, **env},
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_circles_watch_prints_a_write_made_by_another_client(servers: list[str], world: World) -> None:
    collection = fresh()
    env = {"CIRCLES_URL": f"{servers[0]}/{world.circle}", "CIRCLES_KEY": world.member.private_hex}
    counted = watch_process(collection, "--count", "2", **env)
    endless = watch_process(collection, "--prefix", "b", **env)
    try:
        for process in (counted, endless):  # subscribed once it says so
            assert process.stderr is not None
            line = await asyncio.wait_for(asyncio.to_thread(process.stderr.readline), 30)
            assert line.startswith(f"watching {collection}") and " after seq " in line, line
        async with connect(f"{servers[1]}/{world.circle}", key_of(world.owner)) as writer:
            await put(writer, collection, "a", "#{n: 1}")
            await put(writer, collection, "b", "#{n: 2}")
        out, err = await asyncio.to_thread(counted.communicate, timeout=30)
        assert counted.returncode == 0, err
        lines = out.splitlines()
        changes = [json.loads(line) for line in lines]
        assert [(c["key"], c["data"], c["op"]) for c in changes] == [
            ("a", {"n": 1}, "put"),
            ("b", {"n": 2}, "put"),
        ]
        assert changes[1]["seq"] == changes[0]["seq"] + 1 and changes[0]["updated_by"] == world.owner.pubkey
        assert endless.stdout is not None
        only = await asyncio.wait_for(asyncio.to_thread(endless.stdout.readline), 30)
        assert json.loads(only)["key"] == "b"
        endless.send_signal(signal.SIGINT)  # Ctrl+C
        await asyncio.to_thread(endless.wait, 30)
        assert endless.returncode == 130
        assert "Traceback" not in endless.stderr.read()
    finally:
        for process in (counted, endless):
            if process.poll() is None:
                process.kill()
                process.wait()
