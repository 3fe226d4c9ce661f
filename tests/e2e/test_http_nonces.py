"""HTTP-issued nonces (`GET /auth/nonce`, `GET /auth/health`) and `authenticate`'s third param,
against real uvicorn processes, with Redis (two processes sharing it) and in embedded mode."""

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from email.message import Message

import pytest

from tests.e2e.conftest import World
from tests.helpers.keys import WalletKey
from tests.helpers.original_signer import original_signature
from tests.helpers.redis_server import RedisServer
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e

INVALID_CREDENTIALS = -32002


def http_base(ws_url: str) -> str:
    return ws_url.replace("ws://", "http://", 1)


def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, Message]:
    """GET `url`: (status, JSON body, headers)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


def fetch_http_nonce(server: str, **params: str) -> dict:
    """`GET /auth/nonce` with `params`; the 200 body."""
    status, body, headers = get_json(f"{http_base(server)}/auth/nonce?{urllib.parse.urlencode(params)}")
    assert status == 200, body
    assert headers["Cache-Control"] == "no-store"
    return body


@pytest.fixture(scope="module")
def shared_redis_pair(start_server, redis_server: RedisServer) -> tuple[str, str]:
    """Two uvicorn processes sharing one Redis (a stream prefix of their own)."""
    shared = {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e-nonces:{uuid.uuid4().hex[:8]}"}
    return start_server(**shared), start_server(**shared)


@pytest.fixture(scope="module")
def embedded(start_server, sqlite_world: World) -> str:
    """One uvicorn in embedded mode (SQLite, no Redis)."""
    return start_server(world=sqlite_world)


async def authenticate_with(
    url: str, key: WalletKey, nonce: str, *, pubkey: str | None = None, signature=None
):
    async with await RpcClient.connect(url) as client:
        response = await client.request(
            "authenticate", [pubkey or key.pubkey, signature or key.sign(nonce), nonce]
        )
        whoami = await client.call("whoami") if "result" in response else None
        return response, whoami


async def test_a_nonce_issued_by_one_process_signs_in_on_the_other(world: World, shared_redis_pair) -> None:
    first, second = shared_redis_pair
    body = fetch_http_nonce(first, public_key=world.member.pubkey, circle=world.circle)
    assert f"Public key: {world.member.pubkey}" in body["nonce"]
    assert f"to circle {world.circle}" in body["nonce"]
    assert isinstance(body["expires_at"], int)
    response, whoami = await authenticate_with(f"{second}/{world.circle}", world.member, body["nonce"])
    assert response["result"] is True
    assert whoami["pubkey"] == world.member.pubkey and whoami["role"] == "member"


async def test_a_nonce_signs_in_once_only(world: World, shared_redis_pair) -> None:
    first, second = shared_redis_pair
    text = fetch_http_nonce(first, public_key=world.member.pubkey)["nonce"]
    signature = world.member.sign(text)
    ok, _ = await authenticate_with(f"{first}/{world.circle}", world.member, text, signature=signature)
    again, _ = await authenticate_with(f"{second}/{world.circle}", world.member, text, signature=signature)
    assert ok["result"] is True
    assert again["error"]["code"] == INVALID_CREDENTIALS


async def test_two_processes_racing_for_one_nonce_exactly_one_wins(world: World, shared_redis_pair) -> None:
    first, second = shared_redis_pair
    for _ in range(10):
        text = fetch_http_nonce(first)["nonce"]
        signature = world.owner.sign(text)
        a = await RpcClient.connect(f"{first}/{world.circle}")
        b = await RpcClient.connect(f"{second}/{world.circle}")
        async with a, b:
            params = [world.owner.pubkey, signature, text]
            outcomes = await asyncio.gather(
                a.request("authenticate", params), b.request("authenticate", params)
            )
        assert sorted("result" in outcome for outcome in outcomes) == [False, True], outcomes


async def test_a_nonce_without_a_key_binds_whoever_signs_it(world: World, shared_redis_pair) -> None:
    first, _ = shared_redis_pair
    text = fetch_http_nonce(first)["nonce"]
    assert "Public key" not in text and "to circle" not in text
    response, whoami = await authenticate_with(f"{first}/{world.circle}", world.admin, text)
    assert response["result"] is True and whoami["role"] == "admin"


async def test_a_nonce_for_another_key_or_circle_is_refused(world: World, shared_redis_pair) -> None:
    first, second = shared_redis_pair
    for_member = fetch_http_nonce(first, public_key=world.member.pubkey)["nonce"]
    response, _ = await authenticate_with(f"{second}/{world.circle}", world.admin, for_member)
    assert response["error"]["code"] == INVALID_CREDENTIALS
    for_open = fetch_http_nonce(first, circle=world.open_circle)["nonce"]
    response, _ = await authenticate_with(f"{second}/{world.circle}", world.owner, for_open)
    assert response["error"]["code"] == INVALID_CREDENTIALS


async def test_the_bare_nonce_id_redeems_the_ticket_too(world: World, shared_redis_pair) -> None:
    first, second = shared_redis_pair
    text = fetch_http_nonce(first, public_key=world.owner.pubkey)["nonce"]
    nonce_line = next(line for line in text.splitlines() if line.startswith("Nonce: "))
    async with await RpcClient.connect(f"{second}/{world.circle}") as client:
        ok = await client.call(
            "authenticate",
            {"pubkey": world.owner.pubkey, "signature": world.owner.sign(text), "nonce": nonce_line[7:]},
        )
    assert ok is True


async def test_the_original_clients_signature_signs_in(world: World, shared_redis_pair) -> None:
    """keccak256("\\x19Ethereum Signed Message:\\n" + len + text), 65-byte r||s||v, as the original's
    clients computed it by hand (no wallet library), with v 0/1 or 27/28 and with or without 0x."""
    first, second = shared_redis_pair
    for v_base, prefix in ((27, ""), (0, "0x"), (27, "0x"), (0, "")):
        text = fetch_http_nonce(first, public_key=world.owner.pubkey_uncompressed)["nonce"]
        signature = prefix + original_signature(world.owner.private_hex, text, v_base=v_base)
        response, whoami = await authenticate_with(
            f"{second}/{world.owner.pubkey_uncompressed}",
            world.owner,
            text,
            pubkey=world.owner.pubkey_uncompressed,
            signature=signature,
        )
        assert response.get("result") is True, (v_base, prefix, response)
        assert whoami["role"] == "owner"


def test_malformed_requests_are_400_and_unknown_circles_404(world: World, shared_redis_pair) -> None:
    first, _ = shared_redis_pair
    base = f"{http_base(first)}/auth/nonce"
    assert get_json(f"{base}?public_key=nope")[0] == 400
    assert get_json(f"{base}?circle=nope")[0] == 400
    assert get_json(f"{base}?circle={world.inactive_circle}")[0] == 404
    status, body, _ = get_json(f"{base}?public_key={world.member.address}")
    assert status == 200 and f"Address: {world.member.address}" in body["nonce"]


def test_health_counts_the_nonces_waiting(shared_redis_pair) -> None:
    first, second = shared_redis_pair
    before = get_json(f"{http_base(second)}/auth/health")
    fetch_http_nonce(first)
    after = get_json(f"{http_base(second)}/auth/health")
    assert before[0] == after[0] == 200
    assert before[1]["status"] == "healthy" and isinstance(before[1]["timestamp"], int)
    assert after[1]["active_nonces"] == before[1]["active_nonces"] + 1


def test_the_nonce_route_is_limited_per_client_address(start_server, redis_server: RedisServer) -> None:
    """Limited per address, across processes; a trusted proxy's X-Forwarded-For names the client."""
    shared = {
        "REDIS_URL": redis_server.url,
        "CIRCLES_QUEUE_STREAM": f"e2e-nonce-limit:{uuid.uuid4().hex[:8]}",
        "CIRCLES_AUTH_NONCES_PER_ADDRESS_PER_MINUTE": "3",
        "CIRCLES_TRUSTED_PROXIES": "127.0.0.1",
    }
    first, second = http_base(start_server(**shared)), http_base(start_server(**shared))
    client = {"X-Forwarded-For": "198.51.100.7"}
    statuses = [get_json(f"{base}/auth/nonce", client)[0] for base in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]
    status, body, headers = get_json(f"{second}/auth/nonce", client)
    assert status == 429 and headers["Retry-After"] == "60" and body == {"error": "too many nonce requests"}
    assert get_json(f"{first}/auth/nonce", {"X-Forwarded-For": "198.51.100.8"})[0] == 200


async def test_embedded_mode_issues_and_redeems_once(sqlite_world: World, embedded: str) -> None:
    body = fetch_http_nonce(embedded, public_key=sqlite_world.owner.pubkey, circle=sqlite_world.circle)
    url = f"{embedded}/{sqlite_world.circle}"
    ok, whoami = await authenticate_with(url, sqlite_world.owner, body["nonce"])
    again, _ = await authenticate_with(url, sqlite_world.owner, body["nonce"])
    assert ok["result"] is True and whoami["role"] == "owner"
    assert again["error"]["code"] == INVALID_CREDENTIALS
    status, health, _ = get_json(f"{http_base(embedded)}/auth/health")
    assert status == 200 and health["status"] == "healthy" and health["active_nonces"] == 0
