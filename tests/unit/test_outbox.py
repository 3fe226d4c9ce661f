"""A connection's notifications: sent at once while the socket takes them, queued in order while
it does not, and the connection closed (4408) once too many wait (`circles.subscriptions`)."""

import asyncio
from typing import Any

import pytest

from circles import eager
from circles.subscriptions import Subscriptions


class Socket:
    """A connection's send: takes frames at once until `block`ed, then waits for `unblock`."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.open = asyncio.Event()
        self.open.set()
        self.fail: Exception | None = None

    async def send(self, frame: str) -> None:
        await self.open.wait()
        if self.fail is not None:
            raise self.fail
        self.sent.append(frame)


def subscriptions(socket: Socket, *, max_unread: int = 4) -> tuple[Subscriptions, list[str]]:
    overflows: list[str] = []

    def no_events() -> Any:  # pragma: no cover - no group topic here
        raise AssertionError

    outbox = Subscriptions(
        max_subscriptions=10,
        max_unread=max_unread,
        send=socket.send,
        events=no_events,
        overflow=lambda: overflows.append("4408"),
    )
    return outbox, overflows


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_frame_to_a_socket_that_takes_it_is_sent_before_push_returns() -> None:
    socket = Socket()
    outbox, _ = subscriptions(socket)
    outbox.push("a")
    outbox.push("b")
    assert socket.sent == ["a", "b"]  # no task, no turn of the loop
    assert outbox.drainer is None and not outbox.outbox


async def test_while_a_send_waits_later_frames_queue_and_go_in_order() -> None:
    socket = Socket()
    outbox, overflows = subscriptions(socket)
    socket.open.clear()
    for frame in "abcd":
        outbox.push(frame)
    await settle()
    assert socket.sent == [] and list(outbox.outbox) == ["b", "c", "d"]
    socket.open.set()
    await settle()
    assert socket.sent == ["a", "b", "c", "d"] and outbox.drainer is None
    outbox.push("e")  # idle again: at once
    assert socket.sent[-1] == "e" and not overflows


async def test_a_frame_queued_while_the_drain_finishes_is_not_overtaken() -> None:
    socket = Socket()
    outbox, _ = subscriptions(socket)
    socket.open.clear()
    outbox.push("a")
    outbox.push("b")
    socket.open.set()
    await asyncio.sleep(0)  # "a" is sent; the drain has not looked at the outbox yet
    outbox.push("c")
    await settle()
    assert socket.sent == ["a", "b", "c"]


async def test_one_frame_over_the_bound_closes_the_connection() -> None:
    socket = Socket()
    outbox, overflows = subscriptions(socket, max_unread=3)
    socket.open.clear()
    for frame in "abcd":  # "a" in the waiting send, three queued: at the bound
        outbox.push(frame)
    assert not overflows
    outbox.push("e")
    assert overflows == ["4408"] and outbox.closed
    outbox.push("f")  # closed: dropped
    assert overflows == ["4408"]
    await outbox.close()


async def test_room_waits_until_the_outbox_is_half_empty() -> None:
    socket = Socket()
    outbox, _ = subscriptions(socket, max_unread=4)
    socket.open.clear()
    for frame in "abcd":
        outbox.push(frame)
    waiter = asyncio.ensure_future(outbox.room())
    await settle()
    assert not waiter.done()
    socket.open.set()
    await asyncio.wait_for(waiter, 1)
    await settle()
    assert socket.sent == ["a", "b", "c", "d"]


@pytest.mark.parametrize("waits_first", [False, True])
async def test_a_failed_send_ends_the_notifications(waits_first: bool) -> None:
    socket = Socket()
    outbox, overflows = subscriptions(socket)
    socket.fail = ConnectionResetError("gone")
    if waits_first:
        socket.open.clear()
    outbox.push("a")
    outbox.push("b")
    socket.open.set()
    await settle()
    assert outbox.closed and socket.sent == [] and not outbox.outbox and not overflows
    outbox.push("c")
    await settle()
    assert socket.sent == []


async def test_close_cancels_a_waiting_send() -> None:
    socket = Socket()
    outbox, _ = subscriptions(socket)
    socket.open.clear()
    outbox.push("a")
    outbox.push("b")
    await outbox.close()
    socket.open.set()
    await settle()
    assert socket.sent == []


# --- eager.start ---------------------------------------------------------------------------------


async def test_eager_start_runs_a_coroutine_that_never_waits_on_the_spot() -> None:
    done: list[int] = []

    async def quick() -> None:
        done.append(1)

    assert eager.start(quick()) is None and done == [1]


async def test_eager_start_raises_what_the_coroutine_raised_before_waiting() -> None:
    async def broken() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError):
        eager.start(broken())


async def test_eager_start_hands_a_waiting_coroutine_to_a_task_that_finishes_it() -> None:
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    steps: list[str] = []

    async def waits() -> str:
        steps.append("started")
        steps.append(await first)
        try:
            await second
        except KeyError:
            steps.append("caught")
        await asyncio.sleep(0)  # a bare yield to the loop
        return "result"

    task = eager.start(waits())
    assert task is not None and steps == ["started"]
    first.set_result("first")
    await settle()
    assert steps == ["started", "first"]
    second.set_exception(KeyError("k"))
    assert await task == "result" and steps == ["started", "first", "caught"]


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    loop = asyncio.get_running_loop()
    never = loop.create_future()
    cleaned: list[str] = []

    async def waits() -> None:
        try:
            await never
        finally:
            cleaned.append("finally")

    task = eager.start(waits())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"] and never.cancelled()
