"""Nothing lost, counted: subscribers across two ASGI processes while one is SIGKILLed and Redis restarts.

A writer makes N changes (key i, written with db::put, so a retry after a lost answer only
writes the same record again) through whichever process is up; M subscribers, started with
`since` = the head before the first write, reconnect to a live process whenever they lose
theirs and resume with `since` = the last seq they were given. The writer's last write is the
key "end". Every subscriber must end with exactly the changes the log holds for the collection
(read at the end as history), in order, with no gap and no duplicate, and those cover the N keys.
"""

import asyncio
import json
import signal
import uuid

import pytest
import websockets

from tests.e2e.conftest import World
from tests.helpers.job_rpc import NotifiedClient
from tests.helpers.redis_server import RedisServer

pytestmark = pytest.mark.e2e
N = 300
M = 5
END = "end"


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory):
    server = RedisServer(tmp_path_factory.mktemp("chaos-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chaos_settings(own_redis: RedisServer) -> dict[str, str]:
    return {
        "REDIS_URL": own_redis.url,
        "CIRCLES_QUEUE_STREAM": f"e2e-chaos:{uuid.uuid4().hex[:8]}",
        "CIRCLES_CHANGES_CHECK_SECONDS": "0.5",
        "CIRCLES_MAX_CONNECTIONS_PER_ADDRESS": "500",
        "CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE": "5000",
    }


class Subscriber:
    """One watcher that survives its server: reconnects and resumes from the last seq it was given."""

    def __init__(self, servers: list[str], world: World, collection: str, since: int, first: int) -> None:
        self.servers, self.world, self.collection = servers, world, collection
        self.seqs: list[int] = []
        self.keys: list[str] = []
        self.since = since
        self.first = first  # the server it starts on
        self.reconnects = 0

    async def run(self) -> None:
        attempt = self.first
        while END not in self.keys:
            server = self.servers[attempt % len(self.servers)]
            attempt += 1
            try:
                await self.watch(server)
            except (OSError, websockets.ConnectionClosed, TimeoutError, AssertionError):
                self.reconnects += 1
                await asyncio.sleep(0.1)

    async def watch(self, server: str) -> None:
        async with await NotifiedClient.connect(f"{server}/{self.world.circle}", open_timeout=5) as client:
            await client.sign_in(self.world.member)
            last = self.seqs[-1] if self.seqs else self.since
            params = {"topic": "records", "collection": self.collection, "since": last}
            subscription = await client.call("subscribe", params)
            while END not in self.keys:
                message = json.loads(await asyncio.wait_for(client.ws.recv(), 30))
                if message.get("method") != "subscription":
                    continue
                assert message["params"]["subscription"] == subscription
                change = message["params"]["result"]
                self.seqs.append(change["seq"])
                self.keys.append(change["key"])


async def write_all(servers: list[str], world: World, collection: str, progress: list[int]) -> int:
    """Write key 0..N-1 then END through any live server, retrying what failed; how many retries."""
    retries, index, client = 0, 0, None
    keys = [f"k{i}" for i in range(N)] + [END]
    while index < len(keys):
        try:
            if client is None:
                client = await NotifiedClient.connect(f"{servers[retries % len(servers)]}/{world.circle}")
                await client.sign_in(world.owner)
            script = f'db::put("{collection}", "{keys[index]}", #{{i: {index}}}); 0'
            response = await client.request("play", {"script": script}, timeout=15)
            if "error" in response:  # -32012 while Redis is away, -32000 if the run was lost
                raise ConnectionError(response["error"])
            index += 1
            progress[0] = index
        except (OSError, websockets.ConnectionClosed, TimeoutError, ConnectionError):
            retries += 1
            if client is not None:
                await client.ws.close()
            client = None
            await asyncio.sleep(0.1)
    if client is not None:
        await client.ws.close()
    return retries


async def wait_for(progress: list[int], count: int) -> None:
    while progress[0] < count:
        await asyncio.sleep(0.01)


async def test_nothing_is_lost_when_a_server_dies_and_redis_restarts(
    start_server, start_workers, chaos_settings, own_redis: RedisServer, world: World
) -> None:
    for _ in range(2):
        start_workers(**chaos_settings)
    servers = [start_server(**chaos_settings) for _ in range(2)]
    victim = start_server.started[-2]
    collection = f"chaos-{uuid.uuid4().hex[:8]}"
    async with await NotifiedClient.connect(f"{servers[1]}/{world.circle}") as probe:
        await probe.sign_in(world.member)
        start = (await probe.call("records_head"))["seq"]
    subscribers = [Subscriber(servers, world, collection, start, first=index % 2) for index in range(M)]
    watching = [asyncio.ensure_future(s.run()) for s in subscribers]
    await asyncio.sleep(1.0)  # they are subscribed (resumption would cover them anyway)
    progress = [0]
    writing = asyncio.ensure_future(write_all(servers, world, collection, progress))

    await wait_for(progress, N // 3)
    victim.signal(signal.SIGKILL)  # its subscribers and maybe the writer lose their server mid-stream
    await wait_for(progress, 2 * N // 3)
    own_redis.stop()  # every process loses its pub/sub connection and the queue
    await asyncio.sleep(1.0)
    own_redis.start()

    retries = await asyncio.wait_for(writing, 300)
    await asyncio.wait_for(asyncio.gather(*watching), 120)

    async with await NotifiedClient.connect(f"{servers[1]}/{world.circle}") as reader:
        await reader.sign_in(world.member)
        history = await reader.call(
            "subscribe", {"topic": "records", "collection": collection, "since": start}
        )
        truth = await reader.until(history, lambda change: change["key"] == END, timeout=60)
    truth_seqs = [change["seq"] for change in truth]
    assert truth_seqs == sorted(set(truth_seqs))
    assert {change["key"] for change in truth} == {f"k{i}" for i in range(N)} | {END}
    assert len(truth) >= N + 1 and len(truth) <= N + 1 + retries  # a retried write may count twice
    for subscriber in subscribers:
        assert subscriber.seqs == truth_seqs, (subscriber.reconnects, len(subscriber.seqs), len(truth_seqs))
    assert sum(s.reconnects for s in subscribers) >= 1  # the chaos did reach them
