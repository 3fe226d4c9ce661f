"""The `circles_client` library against a real server: uvicorn, Redis and a real `rhai_worker`.

Every error code of the protocol is driven for real and must surface as its own exception;
the server is restarted under a connected client, which must fail what was in flight and
then reconnect and sign in again by itself, in the background, before anyone calls; a server
that stops answering (SIGSTOP) is noticed by the client's pings.
"""

import asyncio
import signal
import uuid

import pytest

from circles_client import (
    AuthenticationRequired,
    CircleClient,
    CircleNotFound,
    ConnectionLost,
    ExecutionError,
    ExecutorUnavailable,
    Forbidden,
    InvalidCredentials,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    RateLimited,
    RequestTimeout,
    SigningKey,
    TooManyRequests,
    connect,
)
from circles_client.connection import Connection
from tests.e2e.conftest import World
from tests.helpers.keys import WalletKey
from tests.helpers.processes import free_port, server_env, start_asgi_server
from tests.helpers.redis_server import RedisServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def queue_settings(redis_server: RedisServer) -> dict[str, str]:
    """The private Redis and a stream of this module's own, shared by its servers and worker."""
    return {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e-client:{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="module")
def workers(start_workers, queue_settings):
    return [start_workers(**queue_settings, concurrency=2)]


@pytest.fixture(scope="module")
def server(start_server, queue_settings, workers) -> str:
    return start_server(**queue_settings)


def key_of(wallet: WalletKey) -> SigningKey:
    return SigningKey.from_hex(wallet.private_hex)


# --- signing in and playing -------------------------------------------------------------------


async def test_member_signs_in_and_plays(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        me = await client.whoami()
        assert me == {
            "circle": world.circle,
            "authenticated": True,
            "pubkey": world.member.pubkey,
            "role": "member",
        }
        result = await client.play("let x = 10; x * 2")
    assert result["output"] == "20" and result["value"] == 20 and result["logs"] == []
    assert uuid.UUID(result["run_id"])


async def test_sign_in_by_address_is_the_same_key(server: str, world: World) -> None:
    client = await connect(f"{server}/{world.circle}", world.admin.private_hex, by_address=True)
    try:
        me = await client.whoami()
        assert me["pubkey"] == world.admin.pubkey and me["role"] == "admin"
        assert (await client.play("print(CALLER_ID); CALLER_ROLE"))["logs"] == [world.admin.pubkey]
    finally:
        await client.close()


async def test_the_owner_signs_in_with_an_uncompressed_circle_url(server: str, world: World) -> None:
    url = f"{server}/0x{world.owner.pubkey_uncompressed.upper()}"
    async with connect(url, key_of(world.owner)) as client:
        assert (await client.whoami())["role"] == "owner"


async def test_sign_in_switches_keys_on_one_connection(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}") as client:
        assert (await client.whoami())["authenticated"] is False
        assert (await client.sign_in(key_of(world.admin)))["role"] == "admin"
        assert (await client.sign_in(key_of(world.member)))["role"] == "member"
        assert await client.logout() is True
        assert (await client.whoami())["authenticated"] is False


async def test_concurrent_plays_get_their_own_answers(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        results = await asyncio.gather(*(client.play(f"{n} * 3") for n in range(25)))
    assert [r["value"] for r in results] == [n * 3 for n in range(25)]


async def test_batch_returns_results_in_order(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        calls = [("play", {"script": "40 + 2"}), ("whoami", None), ("nope", None), ("play", ["7"])]
        played, me, missing, seven = await client.batch(calls, raise_errors=False)
        assert played["value"] == 42 and me["role"] == "member" and seven["value"] == 7
        assert isinstance(missing, MethodNotFound) and missing.data == {"method": "nope"}
        with pytest.raises(MethodNotFound):
            await client.batch(calls)


async def test_notification_gets_no_answer_and_breaks_nothing(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        await client.notify("play", {"script": 'db::put("client", "note", #{n: 1})'})
        for _ in range(50):
            if (await client.play('db::get("client", "note")'))["value"] == {"n": 1}:
                break
            await asyncio.sleep(0.05)
        assert (await client.play('db::get("client", "note")'))["value"] == {"n": 1}


# --- every error code as its exception ----------------------------------------------------------


async def test_parse_error_32700(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}") as client:
        with pytest.raises(ParseError) as junk:
            await client.send_raw('{"jsonrpc": "2.0", "method": "whoami", "id": 1')
        assert junk.value.rpc_code == -32700 and junk.value.reason == "invalid JSON"
        with pytest.raises(ParseError) as binary:
            await client.send_raw(b"\x00\x01")
        assert binary.value.reason == "send UTF-8 JSON text frames"
        assert (await client.whoami())["authenticated"] is False  # the connection stays usable


async def test_invalid_request_32600(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}") as client:
        with pytest.raises(InvalidRequest) as bad_params:
            await client.call("whoami", "not an array or object")
        assert bad_params.value.reason == "params must be an array or an object"
        with pytest.raises(InvalidRequest) as empty:
            await client.batch([])
        assert empty.value.reason == "empty batch"
        with pytest.raises(InvalidRequest):
            await client.send_raw('{"jsonrpc": "1.0", "method": "whoami", "id": "x"}')


async def test_method_not_found_32601(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}") as client:
        with pytest.raises(MethodNotFound) as missing:
            await client.call("no_such_method")
    assert missing.value.data == {"method": "no_such_method"}
    assert "no_such_method" in str(missing.value)


async def test_invalid_params_32602(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        with pytest.raises(InvalidParams) as zero:
            await client.play("1", timeout_ms=0)
        assert zero.value.field == "timeout_ms"
        with pytest.raises(InvalidParams) as bad_key:
            await client.fetch_nonce("02ab")
        assert bad_key.value.field == "pubkey"


async def test_execution_error_32000_carries_kind_message_line_and_column(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        with pytest.raises(ExecutionError) as runtime:
            await client.play('let a = 1;\nlet b = a + "x" * 2;')
        with pytest.raises(ExecutionError) as parse:
            await client.play("let x = ;")
        with pytest.raises(ExecutionError) as thrown:
            await client.play('\n\n  throw "boom";')
    error = runtime.value
    assert error.rpc_code == -32000 and error.kind == "runtime" and error.line == 2
    assert error.column is not None and error.message and error.message != "Execution error"
    assert f"at line 2, column {error.column}" in str(error)
    assert parse.value.kind == "parse" and parse.value.line == 1
    assert thrown.value.kind == "throw" and thrown.value.line == 3 and "boom" in thrown.value.message


async def test_authentication_required_32001(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}") as client:
        with pytest.raises(AuthenticationRequired):
            await client.play("1")


async def test_invalid_credentials_32002(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}") as client:
        for subject in (world.member.pubkey, world.member.address):
            text = await client.fetch_nonce(subject)
            with pytest.raises(InvalidCredentials):
                await client.authenticate(subject, world.guest.sign(text))  # someone else's signature
        assert (await client.whoami())["authenticated"] is False


async def test_forbidden_32003_for_a_guest_in_a_members_only_circle(server: str, world: World) -> None:
    async with connect(f"{server}/{world.circle}", key_of(world.guest)) as client:
        assert (await client.whoami())["role"] == "guest"
        with pytest.raises(Forbidden) as refused:
            await client.play("1")
    assert refused.value.role == "guest" and refused.value.data["needs"] == "member"


async def test_executor_unavailable_32012(start_server, world: World) -> None:
    server = start_server(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        with pytest.raises(ExecutorUnavailable) as unavailable:
            await client.play("1")
        assert unavailable.value.reason == "queue unavailable"
        assert (await client.whoami())["authenticated"] is True


async def test_rate_limited_32029_then_close_4429_then_a_fresh_connection(
    start_server, queue_settings, world: World
) -> None:
    server = start_server(**queue_settings, CIRCLES_RATE_BURST="2", CIRCLES_RATE_PER_SECOND="0.001")
    async with connect(f"{server}/{world.circle}") as client:  # connecting spends one token (whoami)
        assert (await client.whoami())["authenticated"] is False  # the second and last token
        with pytest.raises(RateLimited) as limited:
            await client.whoami()
        assert limited.value.reason == "request rate"
        # The second rejection closes the socket (4429) after its answer: the request behind it is lost.
        second, third = await asyncio.gather(client.whoami(), client.whoami(), return_exceptions=True)
        assert isinstance(second, RateLimited)
        assert isinstance(third, TooManyRequests) and third.close_code == 4429
        assert third.close_reason == "too many requests"
        # The next call opens a new connection with a full bucket.
        assert (await client.whoami())["circle"] == world.circle
        assert client.reconnects == 1


async def test_too_many_failed_sign_ins_close_4429(server: str, world: World) -> None:
    client = await connect(f"{server}/{world.circle}", reconnect=False)
    try:
        for _ in range(5):  # CIRCLES_MAX_FAILED_AUTH
            text = await client.fetch_nonce(world.member.pubkey)
            with pytest.raises(InvalidCredentials):
                await client.authenticate(world.member.pubkey, world.guest.sign(text))
        with pytest.raises(TooManyRequests) as closed:
            await client.whoami()
        assert closed.value.close_code == 4429
        assert closed.value.close_reason == "too many failed authentications"
    finally:
        await client.close()


@pytest.mark.parametrize("path", ["inactive", "unknown", "not-a-key"])
async def test_circle_not_found_4404(server: str, world: World, path: str) -> None:
    circle = {
        "inactive": world.inactive_circle,
        "unknown": WalletKey.named("nobody").pubkey,
        "not-a-key": "not-a-key",
    }[path]
    with pytest.raises(CircleNotFound) as missing:
        await connect(f"{server}/{circle}", key_of(world.member))
    assert missing.value.close_code == 4404 and missing.value.close_reason == "circle not found"
    with pytest.raises(CircleNotFound):  # signed out as well
        await connect(f"{server}/{circle}")


async def test_request_timeout_then_the_late_answer_is_dropped(
    start_server, redis_server: RedisServer, world: World
) -> None:
    lonely = f"e2e-client-lonely:{uuid.uuid4().hex[:8]}"  # no worker reads it: a play waits out its time
    server = start_server(REDIS_URL=redis_server.url, CIRCLES_QUEUE_STREAM=lonely)
    async with connect(f"{server}/{world.circle}", key_of(world.member)) as client:
        with pytest.raises(RequestTimeout):
            await client.call("play", {"script": "1", "timeout_ms": 500}, timeout=0.2)
        await asyncio.sleep(1.5)  # the play's timeout answer arrives for a request nobody waits for
        assert (await client.whoami())["role"] == "member"
        assert client.reconnects == 0


async def test_no_server_is_a_connection_error(world: World) -> None:
    with pytest.raises(ConnectionLost, match="cannot connect"):
        await connect(f"ws://127.0.0.1:{free_port()}/{world.circle}")


# --- reconnecting -------------------------------------------------------------------------------


async def test_reconnects_and_signs_in_again_after_a_server_restart(
    world: World, queue_settings, workers, redis_server: RedisServer, tmp_path
) -> None:
    # The first server queues on a stream no worker reads, so its play is surely in flight when it
    # stops; the second one (same port) uses the module's worker.
    lonely = {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e-gone:{uuid.uuid4().hex[:8]}"}
    process, port = start_asgi_server("uvicorn", server_env(world.database_url, **lonely), tmp_path / "1.log")
    client = CircleClient(f"ws://127.0.0.1:{port}/{world.circle}", key_of(world.member))
    try:
        await client.open()
        assert (await client.whoami())["role"] == "member"
        in_flight = asyncio.create_task(client.play("1", timeout_ms=20_000))
        await asyncio.sleep(0.5)
        process.stop()
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionLost) as lost:
            await in_flight
        assert asyncio.get_running_loop().time() - started < 3  # failed at once, did not hang
        assert "play" in str(lost.value) and "may or may not have run" in str(lost.value)
        assert not client.connected

        client.reconnect_timeout = 0.5  # with the server away, reconnecting gives up clearly
        with pytest.raises(ConnectionLost, match="cannot reconnect"):
            await client.whoami()

        client.reconnect_timeout = 15
        env = server_env(world.database_url, **queue_settings)
        process, _ = start_asgi_server("uvicorn", env, tmp_path / "2.log", port=port)
        result = await client.play("CALLER_ROLE")  # reconnects and signs in again on its own
        assert result["value"] == "member" and client.reconnects == 1
        assert (await client.whoami())["pubkey"] == world.member.pubkey
    finally:
        await client.close()
        process.stop()


async def test_reconnect_after_logout_stays_signed_out(start_server, world: World, tmp_path) -> None:
    env = server_env(world.database_url)
    process, port = start_asgi_server("uvicorn", env, tmp_path / "first.log")
    client = await connect(f"ws://127.0.0.1:{port}/{world.circle}", key_of(world.member))
    try:
        await client.logout()
        process.stop()
        await asyncio.sleep(0.2)  # let the client see the close (a request sent before that would fail)
        process, _ = start_asgi_server("uvicorn", env, tmp_path / "second.log", port=port)
        assert (await client.whoami())["authenticated"] is False
    finally:
        await client.close()
        process.stop()


async def until(condition, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_back_and_signed_in_by_itself_after_a_server_restart(
    world: World, queue_settings, workers, redis_server: RedisServer, tmp_path
) -> None:
    lonely = {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e-gone:{uuid.uuid4().hex[:8]}"}
    process, port = start_asgi_server("uvicorn", server_env(world.database_url, **lonely), tmp_path / "1.log")
    client = CircleClient(
        f"ws://127.0.0.1:{port}/{world.circle}",
        key_of(world.member),
        reconnect_delay=0.1,
        reconnect_max_delay=1.0,
    )
    seen_after_sign_in: list[dict] = []

    async def record_who_it_is(connection: Connection) -> None:
        seen_after_sign_in.append(await connection.request("whoami"))

    try:
        await client.open()
        # The hook the subscriptions will use: run on each new connection once it is signed in again.
        client._after_sign_in.add("record", record_who_it_is)
        in_flight = asyncio.create_task(client.play("1", timeout_ms=20_000))  # queued, never taken
        await asyncio.sleep(0.5)
        process.stop()
        with pytest.raises(ConnectionLost, match="may or may not have run"):
            await in_flight
        env = server_env(world.database_url, **queue_settings)
        process, _ = start_asgi_server("uvicorn", env, tmp_path / "2.log", port=port)
        # Nobody calls: the client comes back on its own, signed in before anything else ran on it.
        await until(lambda: client.reconnects == 1 and client.connected, timeout=20)
        assert seen_after_sign_in == [
            {"circle": world.circle, "authenticated": True, "pubkey": world.member.pubkey, "role": "member"}
        ]
        assert (await client.play("CALLER_ROLE"))["value"] == "member"  # the first call just works
        assert client.reconnects == 1 and client.last_reconnect_error is None
    finally:
        await client.close()
        process.stop()
    assert not client.reconnecting


async def test_pings_notice_a_server_that_stopped_answering(world: World, tmp_path) -> None:
    process, port = start_asgi_server("uvicorn", server_env(world.database_url), tmp_path / "frozen.log")
    client = CircleClient(
        f"ws://127.0.0.1:{port}/{world.circle}",
        key_of(world.member),
        ping_interval=0.5,
        ping_timeout=0.5,
        close_timeout=0.5,
        reconnect_delay=0.1,
        reconnect_max_delay=0.5,
        open_timeout=1,
    )
    try:
        await client.open()
        process.signal(signal.SIGSTOP)  # no close frame, no FIN: only a missing pong tells
        started = asyncio.get_running_loop().time()
        await until(lambda: not client.connected, timeout=5)
        assert asyncio.get_running_loop().time() - started < 3  # interval + pong wait + close wait
        process.signal(signal.SIGCONT)
        await until(lambda: client.reconnects == 1 and client.connected, timeout=20)
        assert (await client.whoami())["role"] == "member"
    finally:
        process.signal(signal.SIGCONT)
        await client.close()
        process.stop()
