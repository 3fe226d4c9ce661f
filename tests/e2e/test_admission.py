"""Admission control (`CIRCLES_MAX_PENDING_SIGN_INS`) on a real server, and the client backing off on it."""

import asyncio

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from circles_client import CircleClient, ConnectionLost, SigningKey
from tests.e2e.conftest import World
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e

# Passes that never expire during a test: only a sign-in or a close gives one back.
BOUND = {"CIRCLES_PENDING_SIGN_IN_SECONDS": "600"}


async def until(condition, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_a_handshake_over_the_bound_is_refused_503_and_a_sign_in_makes_room(
    start_server, world: World
) -> None:
    server = start_server(CIRCLES_MAX_PENDING_SIGN_INS="2", **BOUND)
    url = f"{server}/{world.circle}"
    first, second = await RpcClient.connect(url), await RpcClient.connect(url)
    try:
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(url)
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"] == "1"

        await first.sign_in(world.member)  # signed in: its place is free again
        async with await RpcClient.connect(url) as third:
            assert (await third.call("whoami"))["authenticated"] is False
            with pytest.raises(InvalidStatus):  # second and third hold both places
                await websockets.connect(url)
    finally:
        await first.close()
        await second.close()


async def test_the_client_backs_off_on_a_refused_handshake_and_comes_back(start_server, world: World) -> None:
    server = start_server(CIRCLES_MAX_PENDING_SIGN_INS="1", CIRCLES_MAX_MESSAGE_BYTES="4096", **BOUND)
    url = f"{server}/{world.circle}"
    client = CircleClient(
        url, SigningKey.from_hex(world.member.private_hex), reconnect_delay=0.05, reconnect_max_delay=0.2
    )
    await client.open()
    holder = await RpcClient.connect(url)  # not signed in: holds the only place
    try:
        with pytest.raises(ConnectionLost):  # the server closes 1009: the client reconnects by itself
            await client.call("whoami", {"padding": "x" * 8192})
        await until(lambda: "HTTP 503" in str(client.last_reconnect_error or ""))
        assert client.reconnecting  # refused, and still trying: not a hard failure
        await holder.close()
        whoami = await client.whoami()  # waits for the reconnection
        assert whoami["authenticated"] is True and whoami["pubkey"] == world.member.pubkey
        assert client.reconnects == 1
    finally:
        await client.close()
        await holder.close()
