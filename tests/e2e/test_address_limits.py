"""Per client address limits (connections, sign-in attempts) against real servers.

Every limit of section 7 is per connection, so a client opening more sockets would bypass them
all; these limits are per client address, resolved through `CIRCLES_TRUSTED_PROXIES` as for
webhooks. The servers here run with small limits so the tests are quick.
"""

import asyncio
import contextlib
import uuid

import pytest
import websockets

from tests.e2e.conftest import World
from tests.helpers.redis_server import RedisServer
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e

REFUSED_SIGN_IN = {"code": -32029, "message": "Rate limited", "data": {"reason": "too many sign-in attempts"}}


async def closed_with(ws: websockets.ClientConnection) -> websockets.frames.Close:
    """Read until the server closes; return its close frame."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    return closed.value.rcvd


async def open_answering(url: str, stack: contextlib.AsyncExitStack, **kwargs) -> RpcClient:
    """A connection that is open and answers (so the server has counted it)."""
    client = await stack.enter_async_context(await RpcClient.connect(url, **kwargs))
    assert "result" in await client.request("whoami")
    return client


async def refused_connection(url: str, **kwargs) -> websockets.frames.Close:
    """Connect and return the close frame the server sends at once."""
    async with websockets.connect(url, **kwargs) as ws:
        return await closed_with(ws)


async def answers_again(url: str, attempts: int = 200) -> bool:
    """Whether a new connection is let in once the server has seen earlier ones close.

    The server counts a connection out when it handles the disconnect, which may come just after
    the client's close handshake; so this asks again until a connection is answered.
    """
    for _ in range(attempts):
        async with websockets.connect(url) as ws:
            await ws.send('{"jsonrpc": "2.0", "method": "whoami", "id": 1}')
            try:
                await asyncio.wait_for(ws.recv(), 5)
                return True
            except websockets.ConnectionClosed:
                await asyncio.sleep(0.02)
    return False


def forwarded(address: str) -> dict:
    return {"additional_headers": {"X-Forwarded-For": address}}


async def attempt_sign_in(url: str, key, signer=None, **kwargs) -> dict:
    """One fetch_nonce + authenticate on a new connection; the authenticate response."""
    async with await RpcClient.connect(url, **kwargs) as client:
        nonce = await client.call("fetch_nonce", {"pubkey": key.pubkey})
        return await client.request(
            "authenticate", {"pubkey": key.pubkey, "signature": (signer or key).sign(nonce)}
        )


# --- connections ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_connections_over_the_per_address_limit_close_4429(
    start_server, world: World, kind: str
) -> None:
    server = start_server(kind, CIRCLES_MAX_CONNECTIONS_PER_ADDRESS="5")
    url = f"{server}/{world.circle}"
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(5):
            await open_answering(url, stack)
        reason = "too many connections" if kind == "uvicorn" else ""  # daphne sends no close reason
        close = await refused_connection(url)
        assert (close.code, close.reason) == (4429, reason)
        close = await refused_connection(f"{server}/{world.inactive_circle}")  # refused before the lookup
        assert (close.code, close.reason) == (4429, reason)
    assert await answers_again(url)  # the five closed: their places are free again


async def test_connections_that_end_early_give_their_place_back(start_server, world: World) -> None:
    server = start_server(CIRCLES_MAX_CONNECTIONS_PER_ADDRESS="2")
    for _ in range(6):  # unknown circles (closed 4404 at once) and refused ones count out too
        close = await refused_connection(f"{server}/{world.inactive_circle}")
        assert close.code in (4404, 4429)
    assert await answers_again(f"{server}/{world.circle}")
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            await open_answering(f"{server}/{world.circle}", stack)
        assert (await refused_connection(f"{server}/{world.circle}")).code == 4429


async def test_forwarded_addresses_behind_a_trusted_proxy_are_counted_apart(
    start_server, world: World
) -> None:
    server = start_server(
        "serve", CIRCLES_TRUSTED_PROXIES="127.0.0.1", CIRCLES_MAX_CONNECTIONS_PER_ADDRESS="2"
    )
    url = f"{server}/{world.circle}"
    async with contextlib.AsyncExitStack() as stack:
        for address in ("203.0.113.1", "203.0.113.1", "203.0.113.2", "203.0.113.2"):
            await open_answering(url, stack, **forwarded(address))
        # the proxy appends the peer it saw: the right-most untrusted entry is the client
        close = await refused_connection(url, **forwarded("10.9.9.9, 203.0.113.1"))
        assert (close.code, close.reason) == (4429, "too many connections")
        assert (await refused_connection(url, **forwarded("203.0.113.2"))).code == 4429
        await open_answering(url, stack, **forwarded("203.0.113.3"))
        await open_answering(url, stack)  # the proxy's own address (no header) is one more address


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(start_server, world: World) -> None:
    server = start_server("serve", CIRCLES_MAX_CONNECTIONS_PER_ADDRESS="2")  # no trusted proxies
    url = f"{server}/{world.circle}"
    async with contextlib.AsyncExitStack() as stack:
        await open_answering(url, stack, **forwarded("203.0.113.1"))
        await open_answering(url, stack, **forwarded("203.0.113.2"))
        assert (await refused_connection(url, **forwarded("203.0.113.3"))).code == 4429


# --- sign-in attempts -------------------------------------------------------------------------


async def test_sign_in_attempts_per_address_are_limited_across_connections(
    start_server, world: World
) -> None:
    server = start_server(
        "serve", CIRCLES_TRUSTED_PROXIES="127.0.0.1", CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE="3"
    )
    url = f"{server}/{world.circle}"
    client_a = forwarded("198.51.100.1")
    assert (await attempt_sign_in(url, world.member, **client_a))["result"] is True
    assert (await attempt_sign_in(url, world.member, world.guest, **client_a))["error"]["code"] == -32002
    assert (await attempt_sign_in(url, world.admin, **client_a))["result"] is True  # successes count too
    async with await RpcClient.connect(url, **client_a) as client:
        nonce = await client.call("fetch_nonce", {"pubkey": world.member.pubkey})
        refused = await client.request(
            "authenticate", {"pubkey": world.member.pubkey, "signature": world.member.sign(nonce)}
        )
        assert refused["error"] == REFUSED_SIGN_IN
        assert (await client.call("whoami"))["authenticated"] is False
    # another forwarded address has its own count
    assert (await attempt_sign_in(url, world.member, **forwarded("198.51.100.2")))["result"] is True


async def test_refused_sign_ins_do_not_close_the_connection(start_server, world: World) -> None:
    server = start_server(CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE="1", CIRCLES_MAX_FAILED_AUTH="2")
    async with await RpcClient.connect(f"{server}/{world.circle}") as client:
        await client.sign_in(world.member)
        nonce = await client.call("fetch_nonce", {"pubkey": world.admin.pubkey})
        for _ in range(3):  # refused before the signature is checked: no failed sign-in either
            response = await client.request(
                "authenticate", {"pubkey": world.admin.pubkey, "signature": world.guest.sign(nonce)}
            )
            assert response["error"] == REFUSED_SIGN_IN
        assert (await client.call("whoami"))["pubkey"] == world.member.pubkey  # still the member


async def test_sign_in_attempts_are_counted_in_redis_across_processes(
    start_server, world: World, redis_server: RedisServer
) -> None:
    shared = {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e-limits:{uuid.uuid4().hex[:8]}"}
    first = start_server(**shared, CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE="3")
    second = start_server(**shared, CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE="3")
    assert (await attempt_sign_in(f"{first}/{world.circle}", world.member))["result"] is True
    assert (await attempt_sign_in(f"{second}/{world.circle}", world.member))["result"] is True
    assert (await attempt_sign_in(f"{first}/{world.circle}", world.member))["result"] is True
    assert (await attempt_sign_in(f"{second}/{world.circle}", world.member))["error"] == REFUSED_SIGN_IN
    assert (await attempt_sign_in(f"{first}/{world.circle}", world.member))["error"] == REFUSED_SIGN_IN
    keys = redis_server.client().keys(f"{shared['CIRCLES_QUEUE_STREAM']}:sign-ins:*")
    assert len(keys) == 1 and 0 < redis_server.client().ttl(keys[0]) <= 60
