"""The change hub and the records stream on a real event loop, over an in-memory change log.

The log here is a list the test appends to ("commits"); what the fast path delivers is chosen
by each test: in order, out of order, twice, or not at all. Every watcher and subscription must
end with each change of its collection exactly once, in seq order.
"""

import asyncio
import random
from collections.abc import Sequence

import orjson
import pytest
from prometheus_client import REGISTRY

from circles.change_hub import Change, ChangeHub
from circles.jsonrpc import CHANGES_COMPACTED, RpcError
from circles.record_stream import RecordStream, frame_head


class MemoryLog:
    """The change log of a few circles, in memory; counts its reads."""

    def __init__(self) -> None:
        self.rows: dict[int, list[Change]] = {}
        self.reads = 0
        self.head_reads = 0
        self.pruned_below: dict[int, int] = {}

    def commit(self, circle_id: int, collection: str = "c", key: str = "k") -> Change:
        rows = self.rows.setdefault(circle_id, [])
        seq = len(rows) + 1
        change = Change.from_object({"seq": seq, "collection": collection, "key": key, "op": "put"})
        rows.append(change)
        return change

    async def after(
        self, circle_id: int, since: int, *, limit: int, collection: str | None = None, prefix: str = ""
    ) -> list[Change]:
        self.reads += 1
        await asyncio.sleep(0)  # a real read yields
        floor = self.pruned_below.get(circle_id, 0)
        found = [
            change
            for change in self.rows.get(circle_id, [])
            if change.seq > since
            and change.seq >= floor
            and (collection is None or change.collection == collection)
            and change.key.startswith(prefix)
        ]
        return found[:limit]

    async def heads(self, circle_ids: Sequence[int]) -> dict[int, int]:
        self.head_reads += 1
        await asyncio.sleep(0)
        return {circle_id: len(self.rows.get(circle_id, [])) for circle_id in circle_ids}

    async def window(self, circle_id: int) -> tuple[int, int]:
        await asyncio.sleep(0)
        head = len(self.rows.get(circle_id, []))
        return head, min(max(self.pruned_below.get(circle_id, 0), 1), head + 1)


class Recorder:
    """A watcher that keeps what it was given."""

    def __init__(self) -> None:
        self.seqs: list[int] = []

    def changed(self, change: Change) -> None:
        self.seqs.append(change.seq)


class Outbox:
    """A subscription's outbox: keeps the frames; `maxsize` frames at most unread."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self.frames: list[str] = []
        self.maxsize = maxsize
        self.closed = False
        self.unread = 0
        self.ended: dict[str, RpcError] = {}

    def push(self, frame: str) -> None:
        if self.closed:
            return
        self.frames.append(frame)
        self.unread += 1
        if self.unread > self.maxsize:
            self.closed = True

    async def room(self) -> None:
        while self.unread > self.maxsize // 2:
            await asyncio.sleep(0)

    def revoke(self, subscription: str, error: RpcError) -> None:
        self.ended[subscription] = error

    def read_all(self) -> None:
        self.unread = 0

    def seqs(self, subscription: str) -> list[int]:
        found = []
        for frame in self.frames:
            message = orjson.loads(frame)
            assert message["method"] == "subscription" and message["params"]["subscription"] == subscription
            found.append(message["params"]["result"]["seq"])
        return found


async def settle(rounds: int = 50) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


@pytest.fixture
async def log() -> MemoryLog:
    return MemoryLog()


@pytest.fixture
async def hub(log: MemoryLog):
    hub = ChangeHub(log, check_seconds=3600)
    yield hub
    hub.stop()


async def test_in_order_changes_go_through_without_reading_the_log(hub: ChangeHub, log: MemoryLog) -> None:
    log.commit(1)
    watcher = Recorder()
    assert await hub.watch(1, "c", watcher) == 1  # it starts after the head
    for _ in range(5):
        hub.heard(1, log.commit(1))
    assert watcher.seqs == [2, 3, 4, 5, 6]
    assert log.reads == 0 and hub.fills == 0


async def test_a_lost_message_is_read_from_the_log_before_the_next_is_handed_on(
    hub: ChangeHub, log: MemoryLog
) -> None:
    watcher = Recorder()
    await hub.watch(1, "c", watcher)
    hub.heard(1, log.commit(1))
    log.commit(1)  # 2: its message is lost
    log.commit(1)  # 3: lost too
    hub.heard(1, log.commit(1))  # 4: a gap
    assert watcher.seqs == [1]  # 4 waits for 2 and 3
    hub.heard(1, log.commit(1))  # 5 arrives while the gap is read: held back too
    await settle()
    assert watcher.seqs == [1, 2, 3, 4, 5]
    assert hub.fills == 1


async def test_duplicates_and_out_of_order_delivery(hub: ChangeHub, log: MemoryLog) -> None:
    watcher = Recorder()
    await hub.watch(1, "c", watcher)
    changes = [log.commit(1) for _ in range(50)]
    shuffled = changes * 2
    random.Random(7).shuffle(shuffled)
    for change in shuffled:
        hub.heard(1, change)
        if random.Random(change.seq).random() < 0.2:
            await asyncio.sleep(0)
    await settle()
    assert watcher.seqs == list(range(1, 51))


async def test_a_lost_last_message_is_found_by_the_check(hub: ChangeHub, log: MemoryLog) -> None:
    watcher = Recorder()
    await hub.watch(1, "c", watcher)
    hub.heard(1, log.commit(1))
    log.commit(1)  # the last change: its message never comes, so no gap is ever seen
    await settle()
    assert watcher.seqs == [1]
    hub.check_soon([1])  # what a (re)subscription does; the periodic check does the same
    await settle()
    assert watcher.seqs == [1, 2]


async def test_the_periodic_check_runs_on_its_own(log: MemoryLog) -> None:
    hub = ChangeHub(log, check_seconds=0.01)
    try:
        watcher = Recorder()
        await hub.watch(1, "c", watcher)
        log.commit(1)
        for _ in range(200):
            if watcher.seqs:
                break
            await asyncio.sleep(0.01)
        assert watcher.seqs == [1]
    finally:
        hub.stop()


async def test_watchers_get_only_their_collection_and_one_read_serves_all(
    hub: ChangeHub, log: MemoryLog
) -> None:
    a, b, other = Recorder(), Recorder(), Recorder()
    await hub.watch(1, "c", a)
    await hub.watch(1, "c", b)
    await hub.watch(1, "d", other)
    log.commit(1, "c")
    log.commit(1, "d")
    hub.heard(1, log.commit(1, "c"))  # 1 and 2 lost: one read of the log for the three watchers
    await settle()
    assert a.seqs == b.seqs == [1, 3] and other.seqs == [2]
    assert log.reads == 1


async def test_circles_are_apart_and_a_feed_ends_with_its_last_one(hub: ChangeHub, log: MemoryLog) -> None:
    first, second = Recorder(), Recorder()
    started, ended = [], []
    hub.on_first, hub.on_last = started.append, ended.append
    await hub.watch(1, "c", first)
    await hub.watch(2, "c", second)
    hub.heard(1, log.commit(1))
    hub.heard(2, log.commit(2))
    assert first.seqs == [1] and second.seqs == [1]
    assert started == [1, 2]
    hub.unwatch(1, "c", first)
    assert ended == [1] and hub.watched() == [2]
    hub.heard(1, log.commit(1))
    assert first.seqs == [1]


async def test_concurrent_first_watchers_share_one_baseline(hub: ChangeHub, log: MemoryLog) -> None:
    log.commit(1)
    log.commit(1)
    watchers = [Recorder() for _ in range(5)]
    marks = await asyncio.gather(*(hub.watch(1, "c", w) for w in watchers))
    assert marks == [2] * 5 and log.head_reads == 1


async def test_changes_heard_before_the_baseline_are_not_lost(hub: ChangeHub, log: MemoryLog) -> None:
    watcher = Recorder()
    log.commit(1)
    watching = asyncio.ensure_future(hub.watch(1, "c", watcher))
    await asyncio.sleep(0)  # the feed exists, its baseline is being read
    hub.heard(1, log.commit(1))  # committed after the baseline read started
    mark = await watching
    await settle()
    assert watcher.seqs == [seq for seq in [1, 2] if seq > mark]


async def test_a_pruned_gap_is_skipped_not_waited_for(hub: ChangeHub, log: MemoryLog) -> None:
    watcher = Recorder()
    await hub.watch(1, "c", watcher)
    for _ in range(4):
        log.commit(1)
    log.pruned_below[1] = 4  # 1..3 are gone from the log
    hub.heard(1, log.rows[1][3])
    await settle()
    assert watcher.seqs == [4]


# --- the records stream ------------------------------------------------------------------------


async def opened(hub: ChangeHub, log: MemoryLog, outbox: Outbox, sub: str = "0xs", **options) -> RecordStream:
    stream = RecordStream(hub, log, outbox, circle_id=1, collection="c", **options)
    await stream.open()
    stream.start(sub)
    return stream


async def test_a_frame_is_the_notification_the_encoder_would_make(hub: ChangeHub, log: MemoryLog) -> None:
    outbox = Outbox()
    await opened(hub, log, outbox, "0xabc")
    change = log.commit(1)
    hub.heard(1, change)
    await settle()
    expected = {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"subscription": "0xabc", "result": orjson.loads(change.body)},
    }
    assert orjson.loads(outbox.frames[0]) == expected
    assert outbox.frames[0].startswith(frame_head("0xabc"))


async def test_history_then_live_with_no_gap_and_no_duplicate(hub: ChangeHub, log: MemoryLog) -> None:
    for _ in range(30):
        log.commit(1)
    outbox = Outbox()
    stream = RecordStream(hub, log, outbox, circle_id=1, collection="c", since=10, page=7)
    await stream.open()
    # Committed and heard while the subscribe answer is still on its way: buffered.
    for _ in range(5):
        hub.heard(1, log.commit(1))
    stream.start("0xs")
    await asyncio.sleep(0)
    for _ in range(5):  # heard during the catch-up
        hub.heard(1, log.commit(1))
        await asyncio.sleep(0)
    await settle()
    hub.heard(1, log.commit(1))  # live
    assert stream.live
    assert outbox.seqs("0xs") == list(range(11, 42))


async def test_a_prune_after_the_since_check_ends_the_subscription_with_compacted(
    hub: ChangeHub, log: MemoryLog
) -> None:
    """`since` was inside the window when checked; pruned before the history read: -32006, not a
    silent skip of what was pruned."""
    for _ in range(10):
        log.commit(1)
    outbox = Outbox()
    stream = RecordStream(hub, log, outbox, circle_id=1, collection="c", since=2)
    await stream.open()  # the subscribe checked `since` here: 2 >= oldest - 1
    log.pruned_below[1] = 6  # the housekeeping runs before the catch-up reads
    stream.start("0xs")
    await settle()
    assert outbox.seqs("0xs") == []
    error = outbox.ended["0xs"]
    assert error.code == CHANGES_COMPACTED and error.data == {"oldest": 6, "head": 10}
    assert stream.stopped and not hub.feeds  # the stream let its feed go
    hub.heard(1, log.commit(1))
    await settle()
    assert outbox.seqs("0xs") == []


async def test_a_prune_below_since_is_no_loss(hub: ChangeHub, log: MemoryLog) -> None:
    for _ in range(10):
        log.commit(1)
    outbox = Outbox()
    stream = RecordStream(hub, log, outbox, circle_id=1, collection="c", since=5)
    await stream.open()
    log.pruned_below[1] = 6  # only what the client already has
    stream.start("0xs")
    await settle()
    assert outbox.seqs("0xs") == [6, 7, 8, 9, 10] and not outbox.ended


async def test_without_since_only_later_changes_and_no_read(hub: ChangeHub, log: MemoryLog) -> None:
    log.commit(1)
    outbox = Outbox()
    await opened(hub, log, outbox)
    hub.heard(1, log.commit(1))
    await settle()
    assert outbox.seqs("0xs") == [2] and log.reads == 0


async def test_the_prefix_filters_history_and_live(hub: ChangeHub, log: MemoryLog) -> None:
    for index in range(6):
        log.commit(1, key=f"{'a' if index % 2 else 'b'}:{index}")
    outbox = Outbox()
    await opened(hub, log, outbox, since=0, prefix="a:")
    hub.heard(1, log.commit(1, key="a:live"))
    hub.heard(1, log.commit(1, key="b:live"))
    await settle()
    assert outbox.seqs("0xs") == [2, 4, 6, 7]


async def test_a_buffer_overflow_during_catch_up_is_read_from_the_log(hub: ChangeHub, log: MemoryLog) -> None:
    for _ in range(20):
        log.commit(1)
    outbox = Outbox(maxsize=4)  # the client reads slowly: history waits for room
    stream = RecordStream(hub, log, outbox, circle_id=1, collection="c", since=0, buffer_limit=3, page=5)
    await stream.open()
    stream.start("0xs")
    for _ in range(40):  # many live changes while history waits: the buffer overflows
        hub.heard(1, log.commit(1))
        outbox.read_all()
        await asyncio.sleep(0)
    for _ in range(200):
        outbox.read_all()
        await asyncio.sleep(0)
    assert stream.live and not outbox.closed
    assert stream.mark > 20  # the buffer did overflow
    assert outbox.seqs("0xs") == list(range(1, 61))


async def test_a_stopped_stream_gets_nothing_and_lets_the_feed_go(hub: ChangeHub, log: MemoryLog) -> None:
    outbox = Outbox()
    stream = await opened(hub, log, outbox)
    stream.stop()
    hub.heard(1, log.commit(1))
    assert outbox.frames == [] and hub.watched() == []


async def test_many_subscribers_all_changes_in_order_under_loss(hub: ChangeHub, log: MemoryLog) -> None:
    outboxes = [Outbox() for _ in range(20)]
    rng = random.Random(3)
    for _ in range(10):
        log.commit(1)
    streams = []
    for index, outbox in enumerate(outboxes):
        streams.append(await opened(hub, log, outbox, f"0x{index}", since=rng.randint(0, 10)))
    for _ in range(200):
        change = log.commit(1)
        if rng.random() < 0.9:  # a tenth of the messages are lost
            hub.heard(1, change)
        if rng.random() < 0.3:
            await asyncio.sleep(0)
    hub.check_soon()  # the last ones may have been lost
    await settle(200)
    for index, (outbox, stream) in enumerate(zip(outboxes, streams, strict=True)):
        assert outbox.seqs(f"0x{index}") == list(range(stream.since + 1, 211))


# --- metrics ---------------------------------------------------------------------------------------


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_subscribers_deliveries_and_gap_fills_are_counted(hub: ChangeHub, log: MemoryLog) -> None:
    subscribers, deliveries, fills = (
        sample("circles_record_subscribers"),
        sample("circles_record_deliveries_total"),
        sample("circles_record_gap_fills_total"),
    )
    outboxes = [Outbox(), Outbox()]
    streams = [await opened(hub, log, outbox, f"0x{index}") for index, outbox in enumerate(outboxes)]
    assert sample("circles_record_subscribers") == subscribers + 2
    hub.heard(1, log.commit(1))
    log.commit(1)  # lost: read from the log
    hub.heard(1, log.commit(1))
    await settle()
    assert [outbox.seqs(f"0x{index}") for index, outbox in enumerate(outboxes)] == [[1, 2, 3]] * 2
    assert sample("circles_record_deliveries_total") == deliveries + 6
    assert sample("circles_record_gap_fills_total") == fills + 1
    for stream in streams:
        stream.stop()
        stream.stop()  # twice: counted once
    assert sample("circles_record_subscribers") == subscribers
