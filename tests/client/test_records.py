"""`client.watch(...)`: live records in `circles_client`, against tests/client/fake_records.py.

Checked here is the client's part of the contract: it always subscribes with `since` (the
circle's head read first when none is given), every change is delivered once and in order,
after a drop (or a close 4408) it subscribes again after the last change delivered and gets
exactly the missed ones, a change sent twice is dropped, and a `since` older than what the
server keeps raises `ChangesCompacted` (at once, or after a reconnect) with `oldest` and `head`.
The real server: tests/e2e/test_client_watch.py.
"""

import asyncio
from collections.abc import AsyncIterator

import pytest

from circles_client import (
    AuthenticationRequired,
    ChangesCompacted,
    CircleClient,
    ConnectionLost,
    Forbidden,
    InvalidParams,
    RecordWatch,
    RpcError,
)
from circles_client.errors import TooManyUnreadNotifications
from circles_client.records import list_script
from tests.client.fake_records import FakeLiveCircle
from tests.client.test_jobs import fast_client, until


@pytest.fixture
async def circle() -> AsyncIterator[FakeLiveCircle]:
    fake = FakeLiveCircle()
    await fake.start()
    yield fake
    if fake.server is not None:
        await fake.stop()


@pytest.fixture
async def client(circle: FakeLiveCircle) -> AsyncIterator[CircleClient]:
    client = fast_client(circle.url)
    await client.open()
    yield client
    await client.close()


async def seqs(watch: RecordWatch, count: int) -> list[int]:
    return [(await watch.next(timeout=3))["seq"] for _ in range(count)]


def records_subscribes(circle: FakeLiveCircle) -> list[dict]:
    return [params for params in circle.params_of("subscribe") if params.get("topic") == "records"]


async def test_without_since_it_reads_the_head_and_subscribes_after_it(
    client: CircleClient, circle: FakeLiveCircle
) -> None:
    await circle.put("notes", "before", {"n": 0})
    async with client.watch("notes") as watch:
        assert watch.last_seq == 1
        assert circle.methods(1)[-2:] == ["records_head", "subscribe"]
        assert records_subscribes(circle) == [{"topic": "records", "collection": "notes", "since": 1}]
        await circle.put("notes", "a", {"n": 1})
        await circle.put("other", "a", {"n": 2})  # another collection: not this watch's
        await circle.delete("notes", "a")
        first, second = await watch.next(timeout=3), await watch.next(timeout=3)
    assert (first["seq"], first["key"], first["op"], first["version"]) == (2, "a", "put", 1)
    assert first["data"] == {"n": 1}
    assert (second["seq"], second["op"], second["version"], second["data"]) == (4, "delete", 0, None)
    assert set(first) == {
        "seq", "collection", "key", "op", "version", "data", "updated_by", "updated_at", "source"
    }  # fmt: skip
    with pytest.raises(StopAsyncIteration):
        await watch.next(timeout=1)  # closed by the `async with`
    assert client.subscriptions == 0


async def test_with_since_the_kept_changes_come_first_then_the_live_ones(
    client: CircleClient, circle: FakeLiveCircle
) -> None:
    for n in range(4):
        await circle.put("notes", f"k{n}", {"n": n})
    watch = await client.watch("notes", since=2).start()
    assert "records_head" not in circle.methods()
    await circle.put("notes", "k4", {"n": 4})
    assert await seqs(watch, 3) == [3, 4, 5]
    await watch.close()


async def test_a_prefix_is_sent_and_only_its_keys_come(client: CircleClient, circle: FakeLiveCircle) -> None:
    async with client.watch("orders", prefix="2026-") as watch:
        await circle.put("orders", "2025-12", {"n": 1})
        await circle.put("orders", "2026-01", {"n": 2})
        assert (await watch.next(timeout=3))["key"] == "2026-01"
    assert records_subscribes(circle)[0]["prefix"] == "2026-"


async def test_after_a_drop_it_resumes_after_the_last_change_delivered(
    client: CircleClient, circle: FakeLiveCircle
) -> None:
    watch = await client.watch("notes").start()
    await circle.put("notes", "a", {"n": 1})
    await circle.put("notes", "b", {"n": 2})
    await circle.put("notes", "c", {"n": 3})
    assert await seqs(watch, 1) == [1]  # 2 and 3 came but are not read yet
    await circle.stop()
    await circle.put("notes", "d", {"n": 4})  # written while the client is away
    await circle.put("notes", "e", {"n": 5})
    await circle.start()
    await until(lambda: client.reconnects == 1 and client.connected)
    await circle.put("notes", "f", {"n": 6})
    assert await seqs(watch, 5) == [2, 3, 4, 5, 6]
    assert records_subscribes(circle)[-1]["since"] == 1  # the last one delivered when it dropped
    assert watch.duplicates == 2  # 2 and 3, sent again after the reconnect, dropped
    assert watch.subscription is not None and watch.subscription.params["since"] == 6
    assert watch.subscription.pending() == 0
    await watch.close()


async def test_a_change_sent_twice_is_delivered_once(client: CircleClient, circle: FakeLiveCircle) -> None:
    circle.overlap = 3  # the server re-sends up to 3 changes at or before `since`
    await circle.put("notes", "a", {"n": 1})
    await circle.put("notes", "b", {"n": 2})
    watch = await client.watch("notes", since=1).start()
    assert await seqs(watch, 1) == [2]
    await circle.drop_all()
    await until(lambda: client.reconnects == 1 and client.connected)
    await circle.put("notes", "c", {"n": 3})
    assert await seqs(watch, 1) == [3]
    assert watch.duplicates == 3  # 1 (history before since), then 1 and 2 again after the reconnect
    with pytest.raises(TimeoutError):
        await watch.next(timeout=0.2)
    await watch.close()


async def test_close_4408_for_a_slow_reader_is_a_reconnect_and_the_watch_resumes(
    client: CircleClient, circle: FakeLiveCircle
) -> None:
    watch = await client.watch("notes").start()
    await circle.put("notes", "a", {"n": 1})
    assert await seqs(watch, 1) == [1]
    connection = client._connection
    await circle.drop_all(4408, "too many unread notifications")
    await until(lambda: client.reconnects == 1 and client.connected)
    assert connection is not None and isinstance(connection.lost, TooManyUnreadNotifications)
    await circle.put("notes", "b", {"n": 2})
    assert await seqs(watch, 1) == [2]
    assert records_subscribes(circle)[-1]["since"] == 1
    await watch.close()


async def test_a_since_older_than_the_kept_changes_raises_changes_compacted(
    client: CircleClient, circle: FakeLiveCircle
) -> None:
    for n in range(5):
        await circle.put("notes", f"k{n}", {"n": n})
    circle.compact(4)
    with pytest.raises(ChangesCompacted) as compacted:
        await client.watch("notes", since=1).start()
    assert (compacted.value.oldest, compacted.value.head, compacted.value.rpc_code) == (4, 5, -32006)
    assert isinstance(compacted.value, RpcError) and client.subscriptions == 0
    async with client.watch("notes", since=3) as watch:  # since = oldest - 1: all kept
        assert await seqs(watch, 2) == [4, 5]


async def test_compacted_while_away_ends_the_watch_after_what_it_had(
    client: CircleClient, circle: FakeLiveCircle
) -> None:
    watch = await client.watch("notes").start()
    await circle.put("notes", "a", {"n": 1})
    await until(lambda: watch.subscription is not None and watch.subscription.pending() == 1)
    await circle.stop()
    for n in range(5):
        await circle.put("notes", f"k{n}", {"n": n})
    circle.compact(5)  # what came after seq 1 is partly gone
    await circle.start()
    assert await seqs(watch, 1) == [1]  # what had arrived is still delivered
    with pytest.raises(ChangesCompacted) as compacted:
        await watch.next(timeout=3)
    assert (compacted.value.oldest, compacted.value.head) == (5, 6)
    assert client.subscriptions == 0
    # The way back: re-read, then watch from the head.
    rows = await client.list_records("notes")
    assert [row["key"] for row in rows] == ["a", "k0", "k1", "k2", "k3", "k4"]
    async with client.watch("notes", since=compacted.value.head) as again:
        await circle.put("notes", "z", {"n": 9})
        assert await seqs(again, 1) == [7]


async def test_a_watch_the_server_ends_raises_its_error(client: CircleClient, circle: FakeLiveCircle) -> None:
    watch = await client.watch("notes").start()
    await circle.put("notes", "a", {"n": 1})
    assert await seqs(watch, 1) == [1]
    await circle.revoke_all()  # the caller was removed from the circle
    with pytest.raises(Forbidden) as raised:
        await watch.next(timeout=2)
    assert raised.value.data == {"role": "guest", "needs": "member"}
    with pytest.raises(Forbidden):  # ended for good
        await watch.next(timeout=2)


async def test_refusals_are_raised_by_start(client: CircleClient, circle: FakeLiveCircle) -> None:
    with pytest.raises(InvalidParams) as beyond:
        await client.watch("notes", since=5).start()
    assert beyond.value.field == "since" and "latest change 0" in (beyond.value.reason or "")
    circle.forbidden = True
    with pytest.raises(Forbidden):
        await client.watch("notes").start()  # records_head is refused already
    with pytest.raises(Forbidden):
        await client.watch("notes", since=0).start()
    assert client.subscriptions == 0
    with pytest.raises(ValueError, match="since"):
        client.watch("notes", since=-1)


async def test_a_signed_out_client_may_not_watch(circle: FakeLiveCircle) -> None:
    client = CircleClient(circle.url)
    try:
        await client.open()
        with pytest.raises(AuthenticationRequired):
            await client.watch("notes").start()
    finally:
        await client.close()


async def test_a_closed_client_ends_the_watch(circle: FakeLiveCircle) -> None:
    client = fast_client(circle.url)
    await client.open()
    watch = await client.watch("notes").start()
    waiting = asyncio.create_task(watch.next())
    await client.close()
    with pytest.raises(ConnectionLost, match="was closed"):
        await waiting


async def test_records_head_and_list_records(client: CircleClient, circle: FakeLiveCircle) -> None:
    assert await client.records_head() == {"seq": 0, "oldest": 1}
    await circle.put("notes", 'a"b', {"n": 1})
    await circle.put("notes", "b", {"n": 2})
    await circle.put("other", "c", {"n": 3})
    assert await client.records_head() == {"seq": 3, "oldest": 1}
    rows = await client.list_records("notes", 10, 'a"')
    assert rows == [{"key": 'a"b', "data": {"n": 1}, "version": 1, "updated_by": "02other"}]
    assert list_script("notes", 5, 'a"') == 'db::list("notes", 5, "a\\"")'
    assert list_script("notes") == 'db::list("notes", 100)'
    with pytest.raises(ValueError):
        list_script("notes", 0)
