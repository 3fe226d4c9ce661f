"""The asyncio Redis connections of executor/redis_clients.py when the kernel gives up on a silent peer.

A Redis host cut off (its link down, no RST) is found out by TCP keepalive / the TCP user timeout:
the socket fails with ETIMEDOUT. asyncio's transport then does what `_fatal_error` does here (it
is what its read callback calls): it closes the socket and leaves the error in the stream, which
raises it again on every read. These tests put a real connection to a real redis-server in that
state and check that it reads as a lost connection (and a listener reconnects), not as an empty
read that redis-py's pub/sub reads retry at once, forever, without yielding to the event loop.
"""

import asyncio
import errno

import pytest
import redis
import redis.asyncio as aioredis

from executor.redis_clients import (
    AsyncCountedConnection,
    AsyncCountedSentinelConnection,
    DeadPeerIsLostConnection,
    RedisTarget,
    async_client,
)
from tests.helpers.redis_server import RedisServer

pytestmark = pytest.mark.timeout(30)  # without the fix a read spins the loop: only this ends it


def kernel_timed_out(connection: aioredis.Connection) -> None:
    """Fail `connection`'s socket as keepalive / TCP_USER_TIMEOUT does: ETIMEDOUT, as asyncio reports it."""
    connection._writer.transport._fatal_error(TimeoutError(errno.ETIMEDOUT, "Connection timed out"))


def test_every_asyncio_connection_class_of_the_project_treats_etimedout_as_lost() -> None:
    assert issubclass(AsyncCountedConnection, DeadPeerIsLostConnection)
    assert issubclass(AsyncCountedSentinelConnection, DeadPeerIsLostConnection)
    assert RedisTarget("redis://10.0.0.5:6379/0").layer_host()["connection_class"] is AsyncCountedConnection
    sentinel = RedisTarget("redis://:pw@circles/0", (("10.0.0.6", 26379),), "circles")
    assert sentinel.layer_host()["connection_class"] is AsyncCountedSentinelConnection


async def test_a_read_with_its_own_timeout_on_a_timed_out_socket_raises_connection_error(
    redis_server: RedisServer,
) -> None:
    pool = RedisTarget(redis_server.url).async_pool(timeout=None, connect_timeout=1)
    connection = pool.make_connection()
    await connection.connect()
    try:
        # A read's own timeout still answers "nothing yet".
        assert await connection.read_response(timeout=0.05, disconnect_on_error=False) is None
        kernel_timed_out(connection)
        with pytest.raises(redis.ConnectionError, match="stopped answering"):
            await connection.read_response(timeout=0.05, disconnect_on_error=False)
    finally:
        await connection.disconnect()
        await pool.aclose()


async def test_a_listener_whose_socket_timed_out_resubscribes_and_never_holds_the_loop(
    redis_server: RedisServer,
) -> None:
    client = async_client(redis_server.url, timeout=None, connect_timeout=1)
    pubsub = client.pubsub()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.ensure_future(tick())
    try:
        await pubsub.subscribe("dead-peer")
        messages = pubsub.listen()
        assert (await anext(messages))["type"] == "subscribe"
        first = pubsub.connection
        kernel_timed_out(first)
        async with asyncio.timeout(5):
            message = await anext(messages)  # redis-py reconnects and subscribes again
        assert message["type"] == "subscribe" and pubsub.connection.is_connected
        before = ticks
        await asyncio.sleep(0.1)
        assert ticks > before  # the loop runs other tasks
        await client.publish("dead-peer", "heard")
        async with asyncio.timeout(5):
            assert (await anext(messages))["data"] == b"heard"
    finally:
        ticker.cancel()
        await pubsub.aclose()
        await client.aclose()
