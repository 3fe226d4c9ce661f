"""`CircleClient` reconnecting in the background, against a small in-process JSON-RPC server.

The fake server (tests/client/fake_server.py) signs anyone in, echoes every other method
(`hang` is never answered, `refuse` is refused) and can drop every connection, refuse new ones,
or answer them with close 4404. The real server's restart is in tests/e2e/test_client.py.
"""

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from circles_client import CircleClient, CircleNotFound, ConnectionLost, SigningKey
from circles_client.after_sign_in import AfterSignIn
from circles_client.connection import Connection
from circles_client.errors import InvalidParams
from tests.client.fake_server import NO_ANSWER, FakeConnection, FakeServer, RpcFailure

KEY = SigningKey.from_hex("11" * 32)


class FakeCircle(FakeServer):
    """Echoes every method it does not know: `{"connection": number, "method": method}`."""

    async def answer(self, connection: FakeConnection, method: str, params: Any) -> Any:
        if method == "hang":
            return NO_ANSWER
        if method == "refuse":
            raise RpcFailure(-32602, "Invalid params", {"field": "x"})
        if method in ("fetch_nonce", "authenticate"):
            return await super().answer(connection, method, params)
        return {"connection": connection.number, "method": method}


@pytest.fixture
async def circle() -> AsyncIterator[FakeCircle]:
    fake = FakeCircle()
    await fake.start()
    yield fake
    if fake.server is not None:
        await fake.stop()


def fast_client(url: str, **options) -> CircleClient:
    """A client whose reconnect attempts come quickly, with a seeded jitter."""
    options = {"reconnect_delay": 0.02, "reconnect_max_delay": 0.2, "reconnect_timeout": 3.0} | options
    client = CircleClient(url, KEY, **options)
    client._random = random.Random(7)
    return client


async def until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_reconnects_signs_in_and_redoes_its_steps_without_any_call(circle: FakeCircle) -> None:
    client = fast_client(circle.url)
    redone: list[object] = []

    async def resubscribe(connection: Connection) -> None:
        redone.append(await connection.request("whoami"))

    try:
        await client.open()
        client._after_sign_in.add("subscription", resubscribe)
        in_flight = asyncio.create_task(client.call("hang"))
        await until(lambda: "hang" in circle.methods(1))
        await circle.drop_all()
        with pytest.raises(ConnectionLost, match="may or may not have run"):
            await in_flight
        await until(lambda: client.reconnects == 1 and client.connected)  # nobody called anything
        assert circle.signed_in == [(1, KEY.pubkey), (2, KEY.pubkey)]
        # On the new connection: signing in again, then the step (and nothing else).
        assert circle.methods(2) == [
            "fetch_nonce",
            "authenticate",
            "whoami",
        ]
        assert redone == [{"connection": 2, "method": "whoami"}]
        assert (await client.whoami()) == {"connection": 2, "method": "whoami"}
    finally:
        await client.close()


async def test_calls_made_during_the_outage_wait_for_the_reconnection(circle: FakeCircle) -> None:
    client = fast_client(circle.url)
    try:
        await client.open()
        await circle.stop()
        waiting = asyncio.create_task(client.whoami())
        await asyncio.sleep(0.3)
        assert not waiting.done() and client.reconnecting and client.last_reconnect_error is not None
        await circle.start()  # the same port
        assert (await waiting)["connection"] == 2
        assert client.reconnects == 1 and circle.signed_in[-1] == (2, KEY.pubkey)
    finally:
        await client.close()


async def test_a_call_gives_up_after_reconnect_timeout_but_reconnecting_goes_on(circle: FakeCircle) -> None:
    client = fast_client(circle.url, reconnect_timeout=0.3)
    try:
        await client.open()
        await circle.stop()
        with pytest.raises(ConnectionLost, match=r"cannot reconnect to .* within 0\.3 s: cannot connect"):
            await client.whoami()
        assert client.reconnecting
        await circle.start()
        await until(lambda: client.connected)
        assert client.reconnects == 1
    finally:
        await client.close()


async def test_a_circle_gone_at_reconnect_is_never_tried_again(circle: FakeCircle) -> None:
    client = fast_client(circle.url)
    try:
        await client.open()
        circle.not_found = True
        await circle.drop_all()
        with pytest.raises(CircleNotFound):
            await client.whoami()
        assert not client.reconnecting
        attempts = len(circle.calls)
        with pytest.raises(CircleNotFound):
            await client.whoami()
        await asyncio.sleep(0.5)
        assert len(circle.calls) == attempts and not client.reconnecting and client.reconnects == 0
    finally:
        await client.close()


async def test_close_4404_on_the_connection_itself_is_not_reconnected(circle: FakeCircle) -> None:
    client = fast_client(circle.url)
    try:
        await client.open()
        await circle.drop_all(code=4404)
        with pytest.raises(CircleNotFound):
            await client.whoami()
        assert not client.reconnecting and len(circle.connections) == 1
    finally:
        await client.close()


async def test_a_closed_client_stops_reconnecting_and_never_connects_again(circle: FakeCircle) -> None:
    client = fast_client(circle.url)
    await client.open()
    await circle.stop()
    await until(lambda: client.last_reconnect_error is not None)  # attempts are failing
    waiting = asyncio.create_task(client.whoami())
    await asyncio.sleep(0.05)
    await client.close()
    with pytest.raises(ConnectionLost, match="was closed"):
        await waiting
    assert not client.reconnecting
    await circle.start()
    await asyncio.sleep(0.5)
    assert len(circle.connections) == 1 and not client.connected
    with pytest.raises(ConnectionLost, match="was closed"):
        await client.whoami()


async def test_reconnect_false_leaves_the_connection_lost(circle: FakeCircle) -> None:
    client = fast_client(circle.url, reconnect=False)
    try:
        await client.open()
        await circle.drop_all()
        await asyncio.sleep(0.3)
        assert not client.reconnecting and len(circle.connections) == 1
        with pytest.raises(ConnectionLost, match="close 1012"):
            await client.whoami()
    finally:
        await client.close()


async def test_a_client_that_logged_out_reconnects_signed_out(circle: FakeCircle) -> None:
    client = fast_client(circle.url)
    try:
        await client.open()
        await client.logout()
        await circle.drop_all()
        await until(lambda: client.reconnects == 1)
        assert circle.signed_in == [(1, KEY.pubkey)]  # not again on connection 2
        assert "whoami" in circle.methods(2)  # a signed-out connection checks the circle is there
    finally:
        await client.close()


# --- the after-sign-in steps --------------------------------------------------------------------


class Recorder:
    def __init__(self, fails_with: BaseException | None = None) -> None:
        self.seen: list[object] = []
        self.fails_with = fails_with

    async def __call__(self, connection: object) -> None:
        self.seen.append(connection)
        if self.fails_with is not None:
            raise self.fails_with


async def test_steps_replay_in_the_order_added_and_are_replaced_or_discarded_by_name() -> None:
    steps, order = AfterSignIn(), []

    def step(label: str):
        async def run(connection: object) -> None:
            order.append((label, connection))

        return run

    steps.add("a", step("a"))
    steps.add("b", step("b"))
    steps.add("a", step("a2"))  # replaced in place: still first
    steps.add(("subscribe", "topic"), step("c"))
    steps.discard("b")
    steps.discard("missing")
    assert len(steps) == 2 and "a" in steps and "b" not in steps
    await steps.replay("conn")
    assert order == [("a2", "conn"), ("c", "conn")]


async def test_a_refused_step_is_logged_and_the_others_still_run(caplog) -> None:
    steps = AfterSignIn()
    refused, after = Recorder(InvalidParams(-32602, "Invalid params", {"field": "topic"})), Recorder()
    steps.add("refused", refused)
    steps.add("after", after)
    connection = type("FakeConnection", (), {"url": "ws://x/circle"})()
    await steps.replay(connection)
    assert refused.seen == [connection] and after.seen == [connection]
    assert "'refused' was refused" in caplog.text


async def test_a_lost_connection_stops_the_replay() -> None:
    steps = AfterSignIn()
    lost, after = Recorder(ConnectionLost("gone")), Recorder()
    steps.add("lost", lost)
    steps.add("after", after)
    with pytest.raises(ConnectionLost):
        await steps.replay(object())
    assert after.seen == []


async def test_a_refused_step_does_not_fail_the_reconnection(circle: FakeCircle) -> None:
    client = fast_client(circle.url)
    try:
        await client.open()
        client._after_sign_in.add("refused", lambda connection: connection.request("refuse"))
        await circle.drop_all()
        await until(lambda: client.reconnects == 1)
        assert "refuse" in circle.methods(2) and client.connected
    finally:
        await client.close()
