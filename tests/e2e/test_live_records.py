"""Live records end to end: two real uvicorn processes, real Redis, two real workers, PostgreSQL.

Each test writes to a collection of its own (the e2e database is shared by the session).
"""

import asyncio
import uuid

import pytest

from tests.e2e.conftest import World
from tests.helpers.job_rpc import NotifiedClient
from tests.helpers.keys import WalletKey
from tests.helpers.processes import manage, server_env
from tests.helpers.raw_ws import StallingClient
from tests.helpers.redis_server import RedisServer

pytestmark = pytest.mark.e2e
TOO_MANY_UNREAD = "closing: too many unread notifications"
DROPPED = "dropped: the client read nothing"


@pytest.fixture(scope="module")
def queue_settings(redis_server: RedisServer) -> dict[str, str]:
    return {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e-live:{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="module")
def workers(start_workers, queue_settings):
    return [start_workers(**queue_settings) for _ in range(2)]


@pytest.fixture(scope="module")
def servers(start_server, queue_settings, workers) -> list[str]:
    limits = {"CIRCLES_MAX_CONNECTIONS_PER_ADDRESS": "500", "CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE": "500"}
    return [start_server(**queue_settings, **limits) for _ in range(2)]


def fresh() -> str:
    return f"live-{uuid.uuid4().hex[:10]}"


async def signed_in(server: str, circle: str, key: WalletKey | None) -> NotifiedClient:
    client = await NotifiedClient.connect(f"{server}/{circle}")
    if key is not None:
        await client.sign_in(key)
    return client


async def put(client: NotifiedClient, collection: str, key: str, data: str = "#{n: 1}") -> None:
    await client.call("play", {"script": f'db::put("{collection}", "{key}", {data}); 0'}, timeout=30)


async def error_of(client: NotifiedClient, method: str, params) -> dict:
    response = await client.request(method, params, timeout=30)
    assert "error" in response, response
    return response["error"]


async def changes(client: NotifiedClient, subscription: str, count: int, timeout: float = 20.0) -> list[dict]:
    """Read until `subscription` has `count` notifications; exactly those (none more arrived by then)."""
    found = await client.until(
        subscription, lambda _: len(client.notifications[subscription]) >= count, timeout
    )
    return list(found)


async def test_a_write_through_one_process_reaches_a_subscriber_on_the_other(servers, world: World) -> None:
    collection = fresh()
    async with (
        await signed_in(servers[0], world.circle, world.member) as watcher,
        await signed_in(servers[1], world.circle, world.admin) as writer,
    ):
        head = await watcher.call("records_head")
        assert set(head) == {"seq", "oldest"} and head["seq"] >= 0
        subscription = await watcher.call("subscribe", {"topic": "records", "collection": collection})
        assert subscription.startswith("0x") and len(subscription) == 34
        await put(writer, collection, "a", '#{n: 1, s: "x"}')
        await writer.call("play", {"script": f'db::delete("{collection}", "a"); 0'}, timeout=30)
        put_change, delete_change = await changes(watcher, subscription, 2)
        assert put_change["seq"] > head["seq"] and delete_change["seq"] == put_change["seq"] + 1
        assert put_change["collection"] == collection and put_change["key"] == "a"
        assert (
            put_change["op"] == "put"
            and put_change["version"] == 1
            and put_change["data"] == {"n": 1, "s": "x"}
        )
        assert put_change["updated_by"] == world.admin.pubkey and put_change["source"] == "ws"
        assert put_change["updated_at"].endswith("Z")
        assert (
            delete_change["op"] == "delete"
            and delete_change["version"] == 0
            and delete_change["data"] is None
        )
        assert (await writer.call("records_head"))["seq"] >= delete_change["seq"]
        assert await watcher.call("unsubscribe", [subscription]) is True
        await put(writer, collection, "b")
        await put(writer, collection, "c")
        await watcher.call("whoami")  # nothing more arrived for the ended subscription
        assert len(watcher.notifications[subscription]) == 2


async def test_a_prefix_filters_keys_and_seqs_only_grow(servers, world: World) -> None:
    collection = fresh()
    async with (
        await signed_in(servers[0], world.circle, world.member) as watcher,
        await signed_in(servers[1], world.circle, world.owner) as writer,
    ):
        mine = await watcher.call("subscribe", {"topic": "records", "collection": collection, "prefix": "x:"})
        everything = await watcher.call("subscribe", {"topic": "records", "collection": collection})
        for key in ("x:1", "y:1", "x:2", "xy", "x:3"):
            await put(writer, collection, key)
        filtered = await changes(watcher, mine, 3)
        assert [c["key"] for c in filtered] == ["x:1", "x:2", "x:3"]
        seen = await changes(watcher, everything, 5)
        assert [c["key"] for c in seen] == ["x:1", "y:1", "x:2", "xy", "x:3"]
        assert [c["seq"] for c in seen] == list(range(seen[0]["seq"], seen[0]["seq"] + 5))
        assert [c["seq"] for c in filtered] == [seen[0]["seq"], seen[2]["seq"], seen[4]["seq"]]


async def test_who_may_not_read_is_refused_and_bad_params_named(servers, world: World) -> None:
    params = {"topic": "records", "collection": fresh()}
    async with await signed_in(servers[0], world.circle, None) as signed_out:
        assert (await error_of(signed_out, "subscribe", params))["code"] == -32001
        assert (await error_of(signed_out, "records_head", None))["code"] == -32001
    async with await signed_in(servers[0], world.circle, world.guest) as guest:
        refused = await error_of(guest, "subscribe", params)
        assert refused["code"] == -32003 and refused["data"] == {"role": "guest", "needs": "member"}
        assert (await error_of(guest, "records_head", None))["code"] == -32003
    async with await signed_in(servers[1], world.open_circle, world.guest) as open_guest:
        # Where guests may play, they may read (and so watch) the records too.
        assert (await open_guest.call("subscribe", params)).startswith("0x")
    async with await signed_in(servers[1], world.circle, world.member) as member:
        missing = await error_of(member, "subscribe", {"topic": "records"})
        assert missing["code"] == -32602 and missing["data"] == {
            "field": "collection",
            "reason": "is required",
        }
        bad = await error_of(member, "subscribe", {"topic": "records", "collection": "no spaces"})
        assert bad["code"] == -32602 and bad["data"]["field"] == "collection"
        bad = await error_of(member, "subscribe", {**params, "prefix": "a b"})
        assert bad["code"] == -32602 and bad["data"]["field"] == "prefix"
        negative = await error_of(member, "subscribe", {**params, "since": -1})
        assert negative["code"] == -32602 and negative["data"]["field"] == "since"
        other_topic = await error_of(member, "subscribe", {**params, "job_id": "x"})
        assert other_topic["code"] == -32602
        assert other_topic["data"] == {"field": "job_id", "reason": "is not a parameter of topic records"}
        jobs_with_collection = await error_of(member, "subscribe", {"topic": "jobs", "collection": "c"})
        assert jobs_with_collection["data"] == {
            "field": "collection",
            "reason": "is not a parameter of topic jobs",
        }
        head = (await member.call("records_head"))["seq"]
        ahead = await error_of(member, "subscribe", {**params, "since": head + 1000})
        assert ahead["code"] == -32602 and ahead["data"]["field"] == "since"
        assert ahead["data"]["reason"].startswith("greater than the latest change ")


async def test_a_member_removed_while_watching_gets_an_error_and_no_more_changes(
    servers, world: World
) -> None:
    collection, newcomer = fresh(), WalletKey.named(fresh())
    async with await signed_in(servers[1], world.circle, world.owner) as owner:
        added = await owner.call("play", {"script": f'circle::add_member("{newcomer.pubkey}", "member")'})
        assert added["value"] is True
        async with await signed_in(servers[0], world.circle, newcomer) as watcher:
            subscription = await watcher.call("subscribe", {"topic": "records", "collection": collection})
            await put(owner, collection, "before")
            [first] = await changes(watcher, subscription, 1)
            assert first["key"] == "before"
            await owner.call("play", {"script": f'circle::remove_member("{newcomer.pubkey}")'}, timeout=30)
            await put(owner, collection, "after")
            await put(owner, collection, "later")
            found = await watcher.until(subscription, lambda frame: "error" in frame, 20)
            *delivered, last = found
            assert last["error"]["code"] == -32003
            assert last["error"]["data"] == {"role": "guest", "needs": "member"}
            assert "later" not in {change["key"] for change in delivered}
            await put(owner, collection, "after-the-end")
            assert (await watcher.call("whoami"))["authenticated"] is True  # the socket stays open
            assert watcher.notifications[subscription] == found  # nothing came after the error


async def test_a_script_that_throws_after_a_put_leaves_no_change(servers, world: World) -> None:
    collection = fresh()
    async with (
        await signed_in(servers[0], world.circle, world.member) as watcher,
        await signed_in(servers[1], world.circle, world.member) as writer,
    ):
        subscription = await watcher.call("subscribe", {"topic": "records", "collection": collection})
        before = (await writer.call("records_head"))["seq"]
        script = f'db::put("{collection}", "lost", #{{n: 1}}); throw "no"'
        failed = await error_of(writer, "play", {"script": script})
        assert failed["code"] == -32000 and failed["data"]["kind"] == "throw"
        assert (await writer.call("records_head"))["seq"] == before  # no number was used
        await put(writer, collection, "kept")
        (only,) = await changes(watcher, subscription, 1)
        assert only["key"] == "kept" and only["seq"] == before + 1
        await watcher.call("whoami")
        assert [c["key"] for c in watcher.notifications[subscription]] == ["kept"]


async def test_resuming_with_since_gets_exactly_the_missed_changes(servers, world: World) -> None:
    collection = fresh()
    async with await signed_in(servers[1], world.circle, world.admin) as writer:
        async with await signed_in(servers[0], world.circle, world.member) as watcher:
            subscription = await watcher.call("subscribe", {"topic": "records", "collection": collection})
            for index in range(3):
                await put(writer, collection, f"k{index}")
            seen = await changes(watcher, subscription, 3)
            last = seen[-1]["seq"]
        for index in range(3, 7):  # missed while away
            await put(writer, collection, f"k{index}")
        await put(writer, fresh(), "elsewhere")  # another collection's change: a gap in seq, not a miss
        async with await signed_in(servers[1], world.circle, world.member) as back:
            resumed = await back.call(
                "subscribe", {"topic": "records", "collection": collection, "since": last}
            )
            missed = await changes(back, resumed, 4)
            assert [c["key"] for c in missed] == ["k3", "k4", "k5", "k6"]
            assert missed[0]["seq"] == last + 1
            await put(writer, collection, "k7")  # then live, on the same subscription
            after = await changes(back, resumed, 5)
            assert [c["key"] for c in after] == ["k3", "k4", "k5", "k6", "k7"]
            # since = head: nothing old, only what comes next
            head = (await back.call("records_head"))["seq"]
            from_head = await back.call(
                "subscribe", {"topic": "records", "collection": collection, "since": head}
            )
            await put(writer, collection, "k8")
            (next_one,) = await changes(back, from_head, 1)
            assert next_one["key"] == "k8"


async def test_a_since_before_the_kept_window_is_refused_with_where_it_starts(servers, world: World) -> None:
    """Last in the module: the prune keeps only the newest changes of every circle."""
    collection = fresh()
    async with await signed_in(servers[0], world.circle, world.member) as member:
        for index in range(6):
            await put(member, collection, f"k{index}")
        head = (await member.call("records_head"))["seq"]
        done = manage(server_env(world.database_url), "prune_changes", "--keep-per-circle", "3")
        assert done.returncode == 0, done.stderr
        window = await member.call("records_head")
        assert window == {"seq": head, "oldest": head - 2}
        compacted = await error_of(
            member, "subscribe", {"topic": "records", "collection": collection, "since": head - 4}
        )
        assert compacted["code"] == -32006 and compacted["message"] == "Changes compacted"
        assert compacted["data"] == {"oldest": head - 2, "head": head}
        # The edge of the window is still fine: everything after since is kept.
        edge = await member.call(
            "subscribe", {"topic": "records", "collection": collection, "since": head - 3}
        )
        kept = await changes(member, edge, 3)
        assert [c["key"] for c in kept] == ["k3", "k4", "k5"]


async def test_embedded_mode_the_same_basic_flow(start_server, sqlite_world: World) -> None:
    server = start_server(world=sqlite_world)  # no REDIS_URL: the in-process executor and sinks
    collection = fresh()
    async with (
        await signed_in(server, sqlite_world.circle, sqlite_world.member) as watcher,
        await signed_in(server, sqlite_world.circle, sqlite_world.owner) as writer,
    ):
        subscription = await watcher.call("subscribe", {"topic": "records", "collection": collection})
        await put(writer, collection, "a")
        await put(writer, collection, "b")
        seen = await changes(watcher, subscription, 2)
        assert [c["key"] for c in seen] == ["a", "b"] and seen[1]["seq"] == seen[0]["seq"] + 1
        assert seen[0]["updated_by"] == sqlite_world.owner.pubkey
        await put(writer, collection, "c")
        resumed = await writer.call(
            "subscribe", {"topic": "records", "collection": collection, "since": seen[0]["seq"]}
        )
        history = await changes(writer, resumed, 2)
        assert [c["key"] for c in history] == ["b", "c"]


BIG = 'let s = "xxxxxxxx"; for i in 0..12 { s += s; }'  # 32 KiB of text


async def test_a_subscriber_that_does_not_read_is_closed_4408_and_one_that_never_reads_is_dropped(
    start_server, queue_settings, workers, world: World
) -> None:
    """The outbox fills only once the kernel's and uvicorn's buffers are full: big changes do it."""
    limits = {"CIRCLES_MAX_UNREAD_NOTIFICATIONS": "20", "CIRCLES_MAX_CONNECTIONS_PER_ADDRESS": "500"}
    server = start_server(**queue_settings, **limits)
    log = start_server.started[-1]
    collection = fresh()
    late, never = StallingClient(f"{server}/{world.circle}"), StallingClient(f"{server}/{world.circle}")
    try:
        for client in (late, never):
            client.sign_in(world.member)
            client.call("subscribe", {"topic": "records", "collection": collection})
        async with await signed_in(server, world.circle, world.owner) as writer:
            script = BIG + f'; for i in 0..20 {{ db::put("{collection}", `k${{i}}`, #{{s: s}}); }} 0'
            written = 0
            while log.output().count(TOO_MANY_UNREAD) < 2:
                assert written < 2000, "the outbox never filled"
                await writer.call("play", {"script": script}, timeout=30)
                written += 20
        # The one that reads again gets what was buffered, then the close frame with its code.
        late.read_to_the_end()
        assert late.close is not None and late.close.code == 4408
        assert late.close.reason == "too many unread notifications"
        assert late.notifications < written  # the server stopped sending: its memory stayed bounded
        # The one that never reads cannot take the close frame: the server drops it.
        for _ in range(300):
            if DROPPED in log.output():
                break
            await asyncio.sleep(0.1)
        assert DROPPED in log.output()
        never.read_to_the_end()
        assert never.close is None or never.close.code == 4408
    finally:
        late.shut()
        never.shut()


async def started_job(client: NotifiedClient, script: str) -> str:
    """A job created and started (an event on the circle's jobs topic: it is dispatched)."""
    job_id = await client.call("create_job", [script])
    await client.call("start_job", [job_id])
    return job_id


async def test_an_admin_demoted_while_watching_all_jobs_gets_an_error_and_no_more_events(
    servers, world: World
) -> None:
    """The jobs topic re-reads a subscriber's standing after a membership change, as records do."""
    newcomer = WalletKey.named(fresh())
    async with await signed_in(servers[1], world.circle, world.owner) as owner:
        added = await owner.call("play", {"script": f'circle::add_member("{newcomer.pubkey}", "admin")'})
        assert added["value"] is True
        try:
            async with await signed_in(servers[0], world.circle, newcomer) as watcher:
                subscription = await watcher.call("subscribe", {"topic": "jobs", "all": True})
                before = await started_job(owner, "1")
                await watcher.until(subscription, lambda frame: frame.get("job_id") == before, 20)
                demoted = f'circle::set_role("{newcomer.pubkey}", "member")'
                await owner.call("play", {"script": demoted}, timeout=30)
                after = await started_job(owner, "2")
                found = await watcher.until(subscription, lambda frame: "error" in frame, 20)
                *delivered, last = found
                assert last["error"]["code"] == -32003
                assert last["error"]["data"] == {"role": "member", "needs": "admin"}
                assert after not in {event.get("job_id") for event in delivered}
                await started_job(owner, "3")
                assert (await watcher.call("whoami"))["authenticated"] is True  # the socket stays open
                assert watcher.notifications[subscription] == found  # nothing came after the error
                own = await watcher.call("subscribe", {"topic": "jobs"})  # its own jobs it still may watch
                assert own.startswith("0x")
        finally:  # the shared world keeps its members: later modules count them
            await owner.call("play", {"script": f'circle::remove_member("{newcomer.pubkey}")'}, timeout=30)
