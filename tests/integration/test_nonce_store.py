"""The nonce store against a real Redis: single use across processes, expiry, the active count."""

import asyncio
import multiprocessing
import time
import uuid

import pytest

from auth_secp import Ticket
from circles.nonce_store import MemoryNonceStore, NonceStoreUnavailable, RedisNonceStore
from tests.helpers.processes import free_port
from tests.helpers.redis_server import RedisServer
from tests.helpers.reply_holding_proxy import ReplyHoldingProxy


def prefix() -> str:
    return f"test-nonces:{uuid.uuid4().hex[:8]}"


def ticket(ttl: int = 60) -> Ticket:
    return Ticket.issue("circles.test", time.time(), ttl)


def _redeem_in_a_process(url: str, store_prefix: str, nonce: str, start, results) -> None:
    store = RedisNonceStore(url, store_prefix)
    start.wait()
    results.put(asyncio.run(store.take(nonce)) is not None)


def test_two_processes_redeeming_one_nonce_at_once_exactly_one_wins(redis_server: RedisServer) -> None:
    shared = prefix()
    context = multiprocessing.get_context("fork")  # the children keep the configured Django settings
    for _ in range(20):
        issued = ticket()
        asyncio.run(RedisNonceStore(redis_server.url, shared).put(issued))
        start, results = context.Barrier(2), context.Queue()
        workers = [
            context.Process(
                target=_redeem_in_a_process, args=(redis_server.url, shared, issued.nonce, start, results)
            )
            for _ in range(2)
        ]
        for worker in workers:
            worker.start()
        outcomes = sorted(results.get(timeout=30) for _ in workers)
        for worker in workers:
            worker.join(30)
        assert outcomes == [False, True]


async def test_a_ticket_comes_back_whole_once(redis_server: RedisServer) -> None:
    store = RedisNonceStore(redis_server.url, prefix())
    issued = Ticket.issue("circles.test", time.time(), 60, subject="0x" + "ab" * 20, circle="02" + "11" * 32)
    await store.put(issued)
    assert await store.active() == 1
    assert await store.take(issued.nonce) == issued
    assert await store.take(issued.nonce) is None
    assert await store.active() == 0


async def test_the_key_expires_with_the_ticket(redis_server: RedisServer) -> None:
    store = RedisNonceStore(redis_server.url, prefix())
    issued = ticket(ttl=30)
    await store.put(issued)
    assert 0 < redis_server.client().ttl(store.key(issued.nonce)) <= 30


async def test_an_expired_ticket_is_not_redeemed_nor_counted(redis_server: RedisServer) -> None:
    now = [time.time()]
    store = RedisNonceStore(redis_server.url, prefix(), clock=lambda: now[0])
    issued = ticket(ttl=30)
    await store.put(issued)
    now[0] += 31
    assert await store.active() == 0
    assert await store.take(issued.nonce) is None


async def test_a_redemption_whose_answer_is_lost_is_unavailable_not_an_unknown_nonce(
    redis_server: RedisServer,
) -> None:
    """GETDEL ran in Redis but its answer never came (a loaded machine, the 1 s timeout): sending
    it again would find nothing and refuse a fresh nonce as spent, closing a URL sign-in 4401."""
    proxy = await ReplyHoldingProxy(redis_server.port).start()
    try:
        store = RedisNonceStore(f"redis://127.0.0.1:{proxy.port}/0", prefix())
        issued = ticket()
        await store.put(issued)
        proxy.hold_replies()  # the pooled connection's next answer is lost
        with pytest.raises(NonceStoreUnavailable):
            await store.take(issued.nonce)
        assert redis_server.client().exists(store.key(issued.nonce)) == 0  # it ran: the nonce is spent
    finally:
        await proxy.close()


async def test_an_unreachable_redis_is_unavailable_not_a_local_fallback() -> None:
    store = RedisNonceStore(f"redis://127.0.0.1:{free_port()}/0", prefix())
    for call in (store.put(ticket()), store.take("00" * 16), store.active()):
        try:
            await call
        except NonceStoreUnavailable:
            continue
        raise AssertionError("expected NonceStoreUnavailable")


async def test_the_memory_store_redeems_once_expires_and_has_a_capacity() -> None:
    now = [time.time()]
    store = MemoryNonceStore(capacity=2, clock=lambda: now[0])
    first, second, third = ticket(ttl=10), ticket(ttl=20), ticket(ttl=20)
    assert await store.put(first) and await store.put(second)
    assert not await store.put(third)  # full of unexpired tickets
    assert await store.take(first.nonce) == first and await store.take(first.nonce) is None
    now[0] += 21
    assert await store.take(second.nonce) is None
    assert await store.put(third) and await store.active() == 0  # third also expired by the clock


async def test_more_redemptions_at_once_than_the_pool_has_connections_all_succeed(
    redis_server: RedisServer,
) -> None:
    # A reconnect storm issues and redeems hundreds of nonces at once on one process. redis-py's
    # asyncio pool holds at most 100 connections and refused the 101st command at once ("Too many
    # connections"): a fresh nonce was then 503 or 1013 although Redis was fine.
    store = RedisNonceStore(redis_server.url, prefix())
    tickets = [ticket() for _ in range(250)]
    assert await asyncio.gather(*(store.put(issued) for issued in tickets)) == [True] * len(tickets)
    taken = await asyncio.gather(*(store.take(issued.nonce) for issued in tickets))
    assert taken == tickets
