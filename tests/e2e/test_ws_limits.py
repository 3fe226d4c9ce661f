"""Per-connection limits and the origin policy, each against a real server configured for it."""

import asyncio
import json

import pytest
import websockets

from tests.e2e.conftest import World
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e


async def closed_with(ws: websockets.ClientConnection) -> websockets.frames.Close:
    """Read until the server closes; return its close frame."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    return closed.value.rcvd


async def test_oversized_message_closes_1009(start_server, world: World) -> None:
    server = start_server(CIRCLES_MAX_MESSAGE_BYTES="1024")
    async with websockets.connect(f"{server}/{world.circle}") as ws:
        await ws.send(
            json.dumps(
                {"jsonrpc": "2.0", "method": "whoami", "id": 1, "params": {"x": "é" * 400}},
                ensure_ascii=False,
            )
        )
        assert "error" in json.loads(await ws.recv())  # 800+ bytes: still under the limit
        await ws.send(
            json.dumps(
                {"jsonrpc": "2.0", "method": "whoami", "id": 2, "params": {"x": "é" * 600}},
                ensure_ascii=False,
            )
        )
        close = await closed_with(ws)
    assert close.code == 1009 and close.reason == "message too big"


async def test_batch_over_the_limit_is_an_invalid_request(start_server, world: World) -> None:
    server = start_server(CIRCLES_MAX_BATCH="3")
    async with await RpcClient.connect(f"{server}/{world.circle}") as client:
        await client.send_json([{"jsonrpc": "2.0", "method": "whoami", "id": i} for i in range(3)])
        assert len(await client.recv_json()) == 3
        await client.send_json([{"jsonrpc": "2.0", "method": "whoami", "id": i} for i in range(4)])
        response = await client.recv_json()
        assert response["error"]["code"] == -32600 and "batch" in response["error"]["data"]["reason"]


async def test_failed_authentications_close_4429(start_server, world: World) -> None:
    server = start_server(CIRCLES_MAX_FAILED_AUTH="2")
    async with await RpcClient.connect(f"{server}/{world.circle}") as client:
        for _ in range(2):
            nonce = await client.call("fetch_nonce", {"pubkey": world.member.pubkey})
            response = await client.request(
                "authenticate", {"pubkey": world.member.pubkey, "signature": world.guest.sign(nonce)}
            )
            assert response["error"]["code"] == -32002
        close = await closed_with(client.ws)
    assert close.code == 4429 and close.reason == "too many failed authentications"


async def test_request_rate_answers_32029_then_closes_4429(start_server, world: World) -> None:
    server = start_server(CIRCLES_RATE_PER_SECOND="0.001", CIRCLES_RATE_BURST="3")
    async with await RpcClient.connect(f"{server}/{world.circle}") as client:
        for i in range(3):
            assert "result" in await client.request("whoami"), i
        response = await client.request("whoami")
        assert response["error"]["code"] == -32029
        assert response["error"]["data"] == {"reason": "request rate"}
        await client.send_json({"jsonrpc": "2.0", "method": "whoami"})  # a dropped notification counts too
        await client.send_json({"jsonrpc": "2.0", "method": "whoami", "id": 99})
        close = await closed_with(client.ws)
    assert close.code == 4429 and close.reason == "too many requests"


async def test_in_flight_bound_refuses_a_batch_that_would_exceed_it(start_server, world: World) -> None:
    server = start_server(CIRCLES_MAX_IN_FLIGHT="2", CIRCLES_MAX_BATCH="10")
    async with await RpcClient.connect(f"{server}/{world.circle}") as client:
        await client.send_json([{"jsonrpc": "2.0", "method": "whoami", "id": i} for i in range(3)])
        responses = await client.recv_json()
        assert [r["error"]["data"]["reason"] for r in responses] == ["too many requests in flight"] * 3
        await client.send_json([{"jsonrpc": "2.0", "method": "whoami", "id": i} for i in range(2)])
        assert all("result" in r for r in await client.recv_json())


# --- origin policy ----------------------------------------------------------------------------


async def test_browser_origin_must_be_allowed(server: str, world: World) -> None:
    port = server.rsplit(":", 1)[1]
    async with websockets.connect(f"{server}/{world.circle}", origin=f"http://localhost:{port}") as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "whoami", "id": 1}))
        assert json.loads(await ws.recv())["result"]["circle"] == world.circle
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{server}/{world.circle}", origin="http://evil.example")
    assert refused.value.response.status_code == 403


async def test_missing_origin_can_be_refused(start_server, world: World) -> None:
    server = start_server(CIRCLES_ALLOW_MISSING_ORIGIN="0")
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{server}/{world.circle}")
    assert refused.value.response.status_code == 403
    async with websockets.connect(f"{server}/{world.circle}", origin="http://127.0.0.1") as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "whoami", "id": 1}))
        assert "result" in json.loads(await ws.recv())


async def test_explicit_allowed_origins(start_server, world: World) -> None:
    server = start_server(CIRCLES_ALLOWED_ORIGINS="https://app.example.org")
    async with websockets.connect(f"{server}/{world.circle}", origin="https://app.example.org") as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "whoami", "id": 1}))
        assert "result" in json.loads(await ws.recv())
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(f"{server}/{world.circle}", origin="http://localhost")


async def test_in_flight_bound_refuses_requests_beyond_it(start_server, world: World) -> None:
    server = start_server(CIRCLES_MAX_IN_FLIGHT="2")
    async with await RpcClient.connect(f"{server}/{world.circle}") as client:
        await client.sign_in(world.member)
        for i in range(3):
            params = {"script": "loop {}", "timeout_ms": 1000}
            await client.send_json({"jsonrpc": "2.0", "method": "play", "params": params, "id": i})
        refused = await client.response_to(2, timeout=0.9)
        assert refused["error"]["code"] == -32029
        assert refused["error"]["data"] == {"reason": "too many requests in flight"}
        assert "result" in await client.request("whoami")  # answered in place, not counted
        for i in range(2):
            assert (await client.response_to(i, timeout=5))["error"]["code"] == -32000
        assert (await client.call("play", {"script": "1"}))["value"] == 1  # room again
