"""The circle endpoint over a real WebSocket against a real uvicorn: JSON-RPC 2.0 and sign-in."""

import asyncio

import pytest
import websockets

from tests.e2e.conftest import World
from tests.helpers.keys import WalletKey
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e


async def connect(server: str, circle: str) -> RpcClient:
    return await RpcClient.connect(f"{server}/{circle}")


async def error_of(client: RpcClient, method: str, params=None) -> dict:
    response = await client.request(method, params)
    assert "error" in response, response
    return response["error"]


# --- sign-in -----------------------------------------------------------------------------


async def test_sign_in_flow_reports_the_owner(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        assert await client.call("whoami") == {
            "circle": world.circle,
            "authenticated": False,
            "pubkey": None,
            "role": None,
        }
        nonce = await client.call("fetch_nonce", {"pubkey": world.owner.pubkey})
        assert world.circle in nonce and world.owner.pubkey in nonce and "Expiration Time" in nonce
        signature = world.owner.sign(nonce)
        assert (
            await client.call("authenticate", {"pubkey": world.owner.pubkey, "signature": signature}) is True
        )
        me = await client.call("whoami")
        assert me == {
            "circle": world.circle,
            "authenticated": True,
            "pubkey": world.owner.pubkey,
            "role": "owner",
        }


@pytest.mark.parametrize(("who", "role"), [("admin", "admin"), ("member", "member"), ("guest", "guest")])
async def test_roles_come_from_members(server: str, world: World, who: str, role: str) -> None:
    key: WalletKey = getattr(world, who)
    async with await connect(server, world.circle) as client:
        await client.sign_in(key)
        assert (await client.call("whoami"))["role"] == role


async def test_any_key_form_signs_in_under_the_canonical_key(server: str, world: World) -> None:
    async with await connect(server, "0x" + world.circle.upper()) as client:
        await client.sign_in(world.member, pubkey="0x" + world.member.pubkey_uncompressed.upper())
        me = await client.call("whoami")
        assert me["pubkey"] == world.member.pubkey
        assert me["circle"] == world.circle


async def test_positional_params(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        nonce = await client.call("fetch_nonce", [world.member.pubkey])
        assert await client.call("authenticate", [world.member.pubkey, world.member.sign(nonce)]) is True


async def test_used_nonce_cannot_be_replayed(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        nonce = await client.call("fetch_nonce", {"pubkey": world.member.pubkey})
        params = {"pubkey": world.member.pubkey, "signature": world.member.sign(nonce)}
        assert await client.call("authenticate", params) is True
        await client.call("logout")
        error = await error_of(client, "authenticate", params)
        assert error == {"code": -32002, "message": "Invalid credentials"}
        assert (await client.call("whoami"))["authenticated"] is False


async def test_nonce_is_bound_to_its_connection(server: str, world: World) -> None:
    async with await connect(server, world.circle) as first, await connect(server, world.circle) as second:
        nonce = await first.call("fetch_nonce", {"pubkey": world.member.pubkey})
        params = {"pubkey": world.member.pubkey, "signature": world.member.sign(nonce)}
        assert (await error_of(second, "authenticate", params))["code"] == -32002


async def test_signature_for_another_circle_is_refused(server: str, world: World) -> None:
    async with await connect(server, world.circle) as here, await connect(server, world.open_circle) as there:
        theirs = await there.call("fetch_nonce", {"pubkey": world.member.pubkey})
        await here.call("fetch_nonce", {"pubkey": world.member.pubkey})
        params = {"pubkey": world.member.pubkey, "signature": world.member.sign(theirs)}
        assert (await error_of(here, "authenticate", params))["code"] == -32002


async def test_signature_by_another_key_is_refused(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        nonce = await client.call("fetch_nonce", {"pubkey": world.member.pubkey})
        params = {"pubkey": world.member.pubkey, "signature": world.guest.sign(nonce)}
        assert (await error_of(client, "authenticate", params))["code"] == -32002
        assert (await client.call("whoami"))["authenticated"] is False


async def test_second_fetch_nonce_replaces_the_first(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        first = await client.call("fetch_nonce", {"pubkey": world.member.pubkey})
        second = await client.call("fetch_nonce", {"pubkey": world.member.pubkey})
        assert first != second
        params = {"pubkey": world.member.pubkey, "signature": world.member.sign(first)}
        assert (await error_of(client, "authenticate", params))["code"] == -32002


async def test_expired_nonce_is_refused(start_server, world: World) -> None:
    server = start_server(CIRCLES_NONCE_TTL_SECONDS="1")
    async with await connect(server, world.circle) as client:
        nonce = await client.call("fetch_nonce", {"pubkey": world.member.pubkey})
        await asyncio.sleep(2.1)
        params = {"pubkey": world.member.pubkey, "signature": world.member.sign(nonce)}
        assert (await error_of(client, "authenticate", params))["code"] == -32002


async def test_authenticate_without_nonce_is_refused(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        params = {"pubkey": world.member.pubkey, "signature": "00" * 65}
        assert (await error_of(client, "authenticate", params))["code"] == -32002


async def test_address_sign_in_uses_the_recovered_key(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        await client.sign_in(world.member, pubkey=world.member.address)
        me = await client.call("whoami")
        assert me["pubkey"] == world.member.pubkey and me["role"] == "member"


async def test_logout_forgets_the_key(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        await client.sign_in(world.member)
        assert await client.call("logout") is True
        assert (await client.call("whoami"))["authenticated"] is False
        assert (await error_of(client, "play", {"script": "1"}))["code"] == -32001


# --- play gatekeeping ----------------------------------------------------------------------


async def test_play_needs_authentication(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        assert await error_of(client, "play", {"script": "40 + 2"}) == {
            "code": -32001,
            "message": "Authentication required",
        }


async def test_guest_may_not_play_in_a_members_only_circle(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        await client.sign_in(world.guest)
        error = await error_of(client, "play", {"script": "40 + 2"})
        assert error["code"] == -32003 and error["data"]["role"] == "guest"


# --- JSON-RPC 2.0 framing (the specification's examples, adapted) ----------------------------


async def test_parse_error_keeps_the_connection_open(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        await client.ws.send('{"jsonrpc": "2.0", "method": "whoami", "params": "bar", "baz]')
        response = await client.recv_json()
        assert response["error"]["code"] == -32700 and response["id"] is None
        assert (await client.call("whoami"))["authenticated"] is False


async def test_binary_frame_is_answered_with_a_parse_error(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        await client.ws.send(b'{"jsonrpc": "2.0", "method": "whoami", "id": 1}')
        assert (await client.recv_json())["error"]["code"] == -32700
        assert (await client.call("whoami"))["circle"] == world.circle


@pytest.mark.parametrize(
    "frame",
    [
        {"jsonrpc": "2.0", "method": 1, "params": "bar", "id": 1},
        {"jsonrpc": "1.0", "method": "whoami", "id": 1},
        {"method": "whoami", "id": 1},
        {"jsonrpc": "2.0", "method": "whoami", "params": "bar", "id": 1},
        {"jsonrpc": "2.0", "method": "whoami", "id": {"nested": True}},
        [],
        1,
    ],
)
async def test_invalid_requests(server: str, world: World, frame) -> None:
    async with await connect(server, world.circle) as client:
        await client.send_json(frame)
        response = await client.recv_json()
        assert response["error"]["code"] == -32600
        assert response["jsonrpc"] == "2.0"


async def test_unknown_method(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        error = await error_of(client, "foobar")
        assert error["code"] == -32601 and error["message"] == "Method not found"


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("fetch_nonce", {"pubkey": 12}, "pubkey"),
        ("fetch_nonce", {}, "pubkey"),
        ("fetch_nonce", {"pubkey": "nothex"}, "pubkey"),
        ("authenticate", {"pubkey": "02" + "11" * 32}, "signature"),
        ("play", {"script": ["not", "a", "string"]}, "script"),
        ("play", {"script": "1", "timeout_ms": "soon"}, "timeout_ms"),
        ("whoami", {"surprise": 1}, "surprise"),
    ],
)
async def test_invalid_params_name_the_field(
    server: str, world: World, method: str, params, field: str
) -> None:
    async with await connect(server, world.circle) as client:
        error = await error_of(client, method, params)
        assert error["code"] == -32602
        assert error["data"]["field"] == field


async def test_too_many_positional_params(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        assert (await error_of(client, "whoami", [1]))["code"] == -32602


async def test_batch_mixes_results_errors_and_notifications(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        await client.send_json(
            [
                {"jsonrpc": "2.0", "method": "whoami", "id": "1"},
                {"jsonrpc": "2.0", "method": "logout"},
                {"jsonrpc": "2.0", "method": "nope", "id": "2"},
                {"foo": "boo"},
                {"jsonrpc": "2.0", "method": "fetch_nonce", "params": [world.member.pubkey], "id": "5"},
                1,
            ]
        )
        responses = await client.recv_json()
        assert isinstance(responses, list) and len(responses) == 5
        by_id = {r["id"]: r for r in responses if r["id"] is not None}
        assert by_id["1"]["result"]["circle"] == world.circle
        assert by_id["2"]["error"]["code"] == -32601
        assert "Nonce:" in by_id["5"]["result"]
        assert sorted(r["error"]["code"] for r in responses if r["id"] is None) == [-32600, -32600]


async def test_notifications_get_no_reply(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        await client.send_json({"jsonrpc": "2.0", "method": "whoami"})
        await client.send_json([{"jsonrpc": "2.0", "method": "whoami"}, {"jsonrpc": "2.0", "method": "nope"}])
        await client.send_json({"jsonrpc": "2.0", "method": "whoami", "id": "after"})
        assert (await client.recv_json())["id"] == "after"


async def test_null_id_is_a_request_not_a_notification(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        await client.send_json({"jsonrpc": "2.0", "method": "whoami", "id": None})
        response = await client.recv_json()
        assert response["id"] is None and response["result"]["circle"] == world.circle


async def test_concurrent_requests_are_matched_by_id(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        for i in range(20):
            if i % 2:
                await client.send_json({"jsonrpc": "2.0", "method": "whoami", "id": i})
            else:
                params = {"pubkey": world.member.pubkey}
                await client.send_json({"jsonrpc": "2.0", "method": "fetch_nonce", "params": params, "id": i})
        responses = [await client.recv_json() for _ in range(20)]
        assert sorted(r["id"] for r in responses) == list(range(20))
        for r in responses:
            assert isinstance(r["result"], dict) == (r["id"] % 2 == 1)


async def test_rpc_discover_lists_every_method(server: str, world: World) -> None:
    async with await connect(server, world.circle) as client:
        document = await client.call("rpc.discover")
        names = {m["name"] for m in document["methods"]}
        jobs = {"create_job", "start_job", "run_job", "get_job_status", "get_job_output", "get_job_logs"}
        jobs |= {"get_job", "list_jobs", "stop_job", "delete_job", "clear_all_jobs"}
        subscriptions = {"subscribe", "unsubscribe", "records_head"}
        sign_in_and_play = {"fetch_nonce", "authenticate", "whoami", "logout", "play", "rpc.discover"}
        assert names == sign_in_and_play | jobs | subscriptions
        assert [n["name"] for n in document["x-notifications"]] == ["subscription"]
        authenticate = next(m for m in document["methods"] if m["name"] == "authenticate")
        assert [p["name"] for p in authenticate["params"]] == ["pubkey", "signature", "nonce"]
        assert {"code": -32002, "message": "Invalid credentials"} in authenticate["errors"]


# --- closes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["unknown", "inactive", "02" + "ab" * 32, "not-a-key", "a/b/c", ""])
async def test_unknown_or_inactive_circle_closes_4404(server: str, world: World, path: str) -> None:
    circle = {"unknown": WalletKey.named("nobody").pubkey, "inactive": world.inactive_circle}.get(path, path)
    async with websockets.connect(f"{server}/{circle}") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd.code == 4404
    assert closed.value.rcvd.reason == "circle not found"
