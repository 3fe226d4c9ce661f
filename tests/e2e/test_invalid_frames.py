"""Floods of invalid frames on one connection: rate-limited, bounded, and logged once.

Invalid JSON, invalid request objects and binary frames cost the server a parse and a reply
each; they take tokens from the connection's request rate like valid requests, and past
`CIRCLES_MAX_INVALID_FRAMES` of them the connection is closed 4400.
"""

import asyncio
import json

import pytest
import websockets

from tests.e2e.conftest import World
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e

# One of each kind of invalid frame, and the code it is answered with.
INVALID_FRAMES: list[tuple[str | bytes, int]] = [
    ('{"jsonrpc": "2.0", "method": "whoami", "id": 1', -32700),  # not JSON
    ('[{"jsonrpc": "2.0", "method": "whoami", "id": 2}, 7]', -32600),  # a batch with an invalid entry
    (b'{"jsonrpc": "2.0", "method": "whoami", "id": 3}', -32700),  # binary
    ("[]", -32600),  # empty batch
    ('{"jsonrpc": "1.0", "method": "whoami", "id": 5}', -32600),  # not a request object
]
SINGLE_INVALID_FRAMES = [INVALID_FRAMES[i] for i in (0, 2, 4)]  # one entry each: one token each


def error_code(response: dict | list) -> int:
    """The error code of a response, or of the one error in a batch's answer."""
    if isinstance(response, list):
        (response,) = [entry for entry in response if "error" in entry]
    return response["error"]["code"]


async def closed_with(ws: websockets.ClientConnection) -> websockets.frames.Close:
    """Read until the server closes; return its close frame."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    return closed.value.rcvd


async def test_invalid_frames_past_the_bound_close_4400(start_server, world: World) -> None:
    server = start_server(CIRCLES_MAX_INVALID_FRAMES="5")
    async with await RpcClient.connect(f"{server}/{world.circle}") as client:
        for number, (frame, code) in enumerate(INVALID_FRAMES, 1):
            await client.ws.send(frame)
            assert error_code(await client.recv_json()) == code, frame
            if number < len(INVALID_FRAMES):  # valid requests in between do not reset the count
                assert "result" in await client.request("whoami")
        close = await closed_with(client.ws)
    assert (close.code, close.reason) == (4400, "too many invalid frames")


async def test_invalid_frames_take_tokens_from_the_request_rate(start_server, world: World) -> None:
    server = start_server(
        CIRCLES_RATE_PER_SECOND="0.001", CIRCLES_RATE_BURST="3", CIRCLES_MAX_INVALID_FRAMES="100"
    )
    async with await RpcClient.connect(f"{server}/{world.circle}") as client:
        for frame, code in SINGLE_INVALID_FRAMES:
            await client.ws.send(frame)
            assert error_code(await client.recv_json()) == code, frame
        await client.ws.send(b"binary")  # over the rate: refused like any request
        refused = await client.recv_json()
        assert refused["error"]["code"] == -32029 and refused["error"]["data"] == {"reason": "request rate"}
        assert (await client.request("whoami"))["error"]["code"] == -32029  # the bucket is empty
        await client.ws.send("not json")
        close = await closed_with(client.ws)  # the third rejection in a row
    assert (close.code, close.reason) == (4429, "too many requests")


async def test_a_flood_of_invalid_frames_writes_one_log_line(start_server, world: World) -> None:
    server = start_server(CIRCLES_MAX_INVALID_FRAMES="1000")
    process = start_server.started[-1]
    async with await RpcClient.connect(f"{server}/{world.circle}") as client:
        host, port = client.ws.local_address[:2]
        peer = f"{host}:{port}"
        for number in range(60):
            frame, code = INVALID_FRAMES[number % len(INVALID_FRAMES)]
            await client.ws.send(frame)
            assert error_code(await client.recv_json()) == code
        assert "result" in await client.request("whoami")  # still open, below the bound
    lines = [line for line in process.output().splitlines() if f"peer={peer}]" in line]
    assert len(lines) == 1, lines
    assert "invalid frame" in lines[0]


async def test_batch_entries_that_are_invalid_take_tokens(start_server, world: World) -> None:
    server = start_server(
        CIRCLES_RATE_PER_SECOND="0.001", CIRCLES_RATE_BURST="3", CIRCLES_MAX_INVALID_FRAMES="100"
    )
    async with await RpcClient.connect(f"{server}/{world.circle}") as client:
        await client.send_json([1, 2, {"jsonrpc": "2.0", "method": "whoami", "id": "w"}])
        answers = await client.recv_json()
        assert [answer["error"]["code"] for answer in answers[:2]] == [-32600, -32600]
        assert "result" in answers[2]
        response = await client.request("whoami")
        assert response["error"]["code"] == -32029
        assert json.dumps(response["error"]["data"]) == '{"reason": "request rate"}'
