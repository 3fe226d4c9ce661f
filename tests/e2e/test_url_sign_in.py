"""Sign-in in the WebSocket URL (`/{circle_pk}?pubkey=&sig=&nonce=`) on real servers: accepted,
refused with close 4401 (bad signature, reused, expired, another circle's), counted as a failed
sign-in, over the per-address attempts 4429, and never written to a log line."""

import asyncio
import re
import time
import urllib.parse
import urllib.request
import uuid

import pytest
import websockets

from tests.e2e.conftest import World
from tests.e2e.test_http_nonces import fetch_http_nonce, http_base
from tests.helpers.keys import WalletKey
from tests.helpers.original_signer import original_signature
from tests.helpers.redis_server import RedisServer
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e


def signed_url(
    server: str, circle: str, key: WalletKey, text: str, *, pubkey=None, sig=None, nonce=None
) -> str:
    query = urllib.parse.urlencode(
        {
            "pubkey": pubkey or key.pubkey,
            "sig": sig or key.sign(text),
            "nonce": text if nonce is None else nonce,
        }
    )
    return f"{server}/{circle}?{query}"


async def close_of(url: str) -> websockets.frames.Close:
    """Connect to `url` and return the close frame the server sends at once."""
    async with websockets.connect(url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    return closed.value.rcvd


@pytest.fixture(scope="module")
def pair(start_server, redis_server: RedisServer) -> tuple[str, str]:
    shared = {
        "REDIS_URL": redis_server.url,
        "CIRCLES_QUEUE_STREAM": f"e2e-url-sign-in:{uuid.uuid4().hex[:8]}",
        "CIRCLES_NONCE_TTL_SECONDS": "2",
    }
    return start_server(**shared), start_server(**shared)


async def test_a_signed_url_opens_signed_in_on_another_process(world: World, pair) -> None:
    first, second = pair
    text = fetch_http_nonce(first, public_key=world.admin.pubkey, circle=world.circle)["nonce"]
    async with await RpcClient.connect(signed_url(second, world.circle, world.admin, text)) as client:
        whoami = await client.call("whoami")
    assert whoami["authenticated"] is True and whoami["pubkey"] == world.admin.pubkey
    assert whoami["role"] == "admin"


async def test_the_originals_example_formats_sign_in_at_connect(world: World, pair) -> None:
    """130-hex uncompressed keys in the path and the query, 65-byte signatures with v 0/1/27/28, 0x or not."""
    first, second = pair
    for v_base, prefix in ((27, ""), (0, ""), (27, "0x"), (0, "0x")):
        text = fetch_http_nonce(first, circle=world.owner.pubkey_uncompressed)["nonce"]
        sig = prefix + original_signature(world.owner.private_hex, text, v_base=v_base)
        url = signed_url(
            second,
            world.owner.pubkey_uncompressed,
            world.owner,
            text,
            pubkey=world.owner.pubkey_uncompressed,
            sig=sig,
        )
        async with await RpcClient.connect(url) as client:
            assert (await client.call("whoami"))["role"] == "owner", (v_base, prefix)


@pytest.mark.parametrize("case", ["bad signature", "another key's signature", "incomplete", "unknown nonce"])
async def test_bad_credentials_close_4401(world: World, pair, case: str) -> None:
    first, second = pair
    text = fetch_http_nonce(first)["nonce"]
    if case == "bad signature":
        url = signed_url(second, world.circle, world.member, text, sig="00" * 65)
    elif case == "another key's signature":
        url = signed_url(second, world.circle, world.member, text, sig=world.admin.sign(text))
    elif case == "incomplete":
        url = f"{second}/{world.circle}?pubkey={world.member.pubkey}&nonce={urllib.parse.quote(text)}"
    else:
        url = signed_url(second, world.circle, world.member, text, nonce="ab" * 16)
    close = await close_of(url)
    assert (close.code, close.reason) == (4401, "invalid credentials")


async def test_a_reused_nonce_closes_4401(world: World, pair) -> None:
    first, second = pair
    text = fetch_http_nonce(first, public_key=world.member.pubkey)["nonce"]
    url = signed_url(second, world.circle, world.member, text)
    async with await RpcClient.connect(url) as client:
        assert (await client.call("whoami"))["authenticated"] is True
    close = await close_of(url.replace(second, first))
    assert (close.code, close.reason) == (4401, "invalid credentials")


async def test_an_expired_nonce_closes_4401(world: World, pair) -> None:
    first, second = pair
    body = fetch_http_nonce(first, public_key=world.member.pubkey)
    while time.time() < body["expires_at"] + 0.2:  # the TTL is 2 s on these servers
        await asyncio.sleep(0.2)
    close = await close_of(signed_url(second, world.circle, world.member, body["nonce"]))
    assert (close.code, close.reason) == (4401, "invalid credentials")


async def test_another_circles_nonce_closes_4401(world: World, pair) -> None:
    first, second = pair
    text = fetch_http_nonce(first, public_key=world.member.pubkey, circle=world.open_circle)["nonce"]
    close = await close_of(signed_url(second, world.circle, world.member, text))
    assert (close.code, close.reason) == (4401, "invalid credentials")


async def test_a_refusal_counts_as_a_failed_sign_in(world: World, pair) -> None:
    first, _ = pair
    before = failed_count(first)
    text = fetch_http_nonce(first)["nonce"]
    await close_of(signed_url(first, world.circle, world.member, text, sig=world.admin.sign(text)))
    assert failed_count(first) == before + 1


def failed_count(server: str) -> float:
    """The server's `circles_sign_ins_total{outcome="invalid"}`."""
    with urllib.request.urlopen(f"{http_base(server)}/metrics", timeout=10) as response:
        body = response.read().decode()
    match = re.search(r'^circles_sign_ins_total\{outcome="invalid"\} (\S+)$', body, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_url_sign_ins_count_against_the_per_address_attempts(start_server, world: World) -> None:
    server = start_server(CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE="2")
    for _ in range(2):
        text = fetch_http_nonce(server)["nonce"]
        async with await RpcClient.connect(signed_url(server, world.circle, world.member, text)) as client:
            assert (await client.call("whoami"))["authenticated"] is True
    text = fetch_http_nonce(server)["nonce"]
    close = await close_of(signed_url(server, world.circle, world.member, text))
    assert (close.code, close.reason) == (4429, "too many sign-in attempts")


async def test_a_url_without_sign_in_params_opens_signed_out(world: World, pair) -> None:
    _, second = pair
    async with await RpcClient.connect(f"{second}/{world.circle}?lang=en") as client:
        assert (await client.call("whoami"))["authenticated"] is False


@pytest.mark.parametrize("kind", ["uvicorn", "daphne", "serve"])
async def test_the_query_string_reaches_no_log_line(start_server, world: World, kind: str) -> None:
    """uvicorn's handshake line, daphne's access log, our own lines: the path, never the query."""
    server = start_server(kind, LOG_LEVEL="DEBUG", CIRCLES_ACCESS_LOG="1")
    process = start_server.started[-1]
    good = fetch_http_nonce(server, public_key=world.member.pubkey)["nonce"]
    good_url = signed_url(server, world.circle, world.member, good)
    async with await RpcClient.connect(good_url) as client:
        assert (await client.call("whoami"))["authenticated"] is True
    bad = fetch_http_nonce(server)["nonce"]
    bad_sig = world.admin.sign(bad)
    assert (await close_of(signed_url(server, world.circle, world.member, bad, sig=bad_sig))).code == 4401
    await asyncio.sleep(0.5)  # let the server write its lines for the closed connections
    log = process.output()
    assert world.circle in log  # the lines were written, with the path
    for secret in (
        world.member.sign(good),
        bad_sig,
        "sig=",
        good.splitlines()[2][7:],
        bad.splitlines()[1][7:],
    ):
        assert secret not in log, secret
