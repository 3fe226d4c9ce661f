"""Unit tests for the executor shares (executor.shares), the per-caller lines (executor.lines) and
the pace of their refusals (executor.refusal_pace)."""

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from executor.lines import LineFull, Lines
from executor.refusal_pace import PRUNE_ABOVE, RefusalPace
from executor.shares import CALLER, CIRCLE, LocalShares, OverShare, ShareLimits, refusal

# --- LocalShares ---------------------------------------------------------------------------


def test_a_caller_gets_its_share_and_no_more() -> None:
    shares = LocalShares(ShareLimits(per_caller=1, per_circle=4))
    assert shares.take("alice", 1) is None
    assert shares.take("alice", 1) == CALLER
    assert shares.take("bob", 1) is None  # another member of the same circle has a share of its own
    shares.give_back("alice", 1)
    assert shares.take("alice", 1) is None


def test_a_circle_gets_its_share_whoever_calls() -> None:
    shares = LocalShares(ShareLimits(per_caller=2, per_circle=2))
    assert shares.take("alice", 1) is None and shares.take("bob", 1) is None
    assert shares.take("carol", 1) == CIRCLE
    assert shares.take("carol", 2) is None  # another circle
    assert shares.of_circle(1) == 2 and shares.of_caller("carol") == 1


def test_a_refused_take_counts_nothing() -> None:
    shares = LocalShares(ShareLimits(per_caller=1, per_circle=1))
    shares.take("alice", 1)
    assert shares.take("bob", 1) == CIRCLE
    assert shares.of_caller("bob") == 0 and shares.of_circle(1) == 1


def test_zero_means_no_bound() -> None:
    shares = LocalShares(ShareLimits(per_caller=0, per_circle=0))
    assert all(shares.take("alice", 1) is None for _ in range(1000))


@given(st.lists(st.tuples(st.booleans(), st.sampled_from("abc"), st.integers(1, 2)), max_size=60))
def test_counts_never_pass_the_limits_and_return_to_zero(steps: list[tuple[bool, str, int]]) -> None:
    limits = ShareLimits(per_caller=2, per_circle=3)
    shares = LocalShares(limits)
    held: list[tuple[str, int]] = []
    for take, caller, circle in steps:
        if take:
            if shares.take(caller, circle) is None:
                held.append((caller, circle))
        elif held:
            shares.give_back(*held.pop(0))
        for who in "abc":
            assert shares.of_caller(who) == sum(1 for c, _ in held if c == who) <= limits.per_caller
        for where in (1, 2):
            assert shares.of_circle(where) == sum(1 for _, c in held if c == where) <= limits.per_circle
    for caller, circle in held:
        shares.give_back(caller, circle)
    assert shares._callers == {} and shares._circles == {}


def test_script_replies_map_to_refusals() -> None:
    assert isinstance(refusal(1), OverShare) and refusal(1).which == CALLER
    assert refusal(2).which == CIRCLE
    assert refusal(b"1-0") is None and refusal(None) is None


# --- Lines ---------------------------------------------------------------------------------


class Gate:
    """A share of `room` places that an attempt takes; `free` gives one back."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.order: list[str] = []

    def attempt(self, name: str):
        async def attempt() -> bool:
            if self.room <= 0:
                return False
            self.room -= 1
            self.order.append(name)
            return True

        return attempt


async def test_an_empty_line_starts_at_once() -> None:
    lines, gate = Lines(poll_seconds=60), Gate(1)
    assert await lines.wait_turn("alice", gate.attempt("a1")) is True
    assert lines.waiting("alice") == 0


async def test_a_waiting_caller_does_not_hold_up_another() -> None:
    lines, alice, bob = Lines(poll_seconds=60), Gate(0), Gate(1)
    waiting = asyncio.ensure_future(lines.wait_turn("alice", alice.attempt("a1")))
    await asyncio.sleep(0)
    assert lines.waiting("alice") == 1
    assert await lines.wait_turn("bob", bob.attempt("b1")) is True  # alice's line is not bob's
    assert not waiting.done()
    alice.room = 1
    lines.wake("alice")
    assert await waiting is True


async def test_a_line_starts_in_order_one_wake_at_a_time() -> None:
    lines, gate = Lines(poll_seconds=60), Gate(0)
    waiters = [asyncio.ensure_future(lines.wait_turn("alice", gate.attempt(f"a{i}"))) for i in range(3)]
    await asyncio.sleep(0)
    for expected in (["a0"], ["a0", "a1"], ["a0", "a1", "a2"]):
        gate.room += 1
        lines.wake("alice")
        for _ in range(5):
            await asyncio.sleep(0)
        assert gate.order == expected
    assert all(await asyncio.gather(*waiters)) and lines.waiting("alice") == 0


async def test_the_head_polls_without_a_wake() -> None:
    lines, gate = Lines(poll_seconds=0.01), Gate(0)
    waiting = asyncio.ensure_future(lines.wait_turn("alice", gate.attempt("a")))
    await asyncio.sleep(0.02)
    gate.room = 1  # freed elsewhere (another process): nobody wakes the line
    assert await asyncio.wait_for(waiting, 5) is True


async def test_a_cancelled_waiter_leaves_and_the_next_one_tries() -> None:
    lines, gate = Lines(poll_seconds=60), Gate(0)
    first = asyncio.ensure_future(lines.wait_turn("alice", gate.attempt("a0")))
    second = asyncio.ensure_future(lines.wait_turn("alice", gate.attempt("a1")))
    await asyncio.sleep(0)
    gate.room = 1
    first.cancel()  # its connection closed while it waited at the head
    assert await second is True and gate.order == ["a1"]
    assert lines.waiting("alice") == 0


async def test_abort_ends_the_wait() -> None:
    lines, gate = Lines(poll_seconds=60), Gate(0)
    abort = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(lines.wait_turn("alice", gate.attempt("a"), abort))
    await asyncio.sleep(0)
    abort.set_exception(RuntimeError("shutting down"))
    assert await waiting is False and lines.waiting("alice") == 0
    abort.exception()  # retrieved


async def test_a_full_line_refuses_at_once_and_a_freed_place_admits_again() -> None:
    lines, gate = Lines(poll_seconds=60, max_waiting=2), Gate(0)
    waiters = [asyncio.ensure_future(lines.wait_turn("alice", gate.attempt(f"a{i}"))) for i in range(2)]
    await asyncio.sleep(0)
    assert lines.waiting("alice") == 2
    with pytest.raises(LineFull):
        await lines.wait_turn("alice", gate.attempt("a2"))
    assert lines.waiting("alice") == 2 and gate.order == []  # not tried: the head comes first
    assert await Lines(max_waiting=2).wait_turn("bob", Gate(1).attempt("b")) is True  # per caller
    gate.room = 1
    lines.wake("alice")
    assert await waiters[0] is True
    third = asyncio.ensure_future(lines.wait_turn("alice", gate.attempt("a3")))  # a place is free
    await asyncio.sleep(0)
    assert lines.waiting("alice") == 2 and not third.done()
    gate.room = 2
    lines.wake("alice")
    assert await waiters[1] is True and await third is True
    assert gate.order == ["a0", "a1", "a3"]


async def test_an_unbounded_line_takes_every_request() -> None:
    lines, gate = Lines(poll_seconds=60, max_waiting=0), Gate(0)
    waiters = [asyncio.ensure_future(lines.wait_turn("alice", gate.attempt(f"a{i}"))) for i in range(50)]
    await asyncio.sleep(0)
    assert lines.waiting("alice") == 50
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)


# --- RefusalPace -------------------------------------------------------------------------------


def test_refusals_within_the_rate_are_prompt_and_past_it_held_for_half_to_all_the_time_left() -> None:
    pace = RefusalPace(per_second=3, chance=random.Random(7))
    assert [pace.delay("alice", 100.0, 2.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    held = [pace.delay("alice", 100.0, 2.0) for _ in range(200)]
    assert all(1.0 <= d <= 2.0 for d in held)
    assert len({round(d, 3) for d in held}) > 150  # spread out, not one moment for the batch
    assert pace.delay("bob", 100.0, 2.0) == 0.0  # another caller has its own rate
    assert pace.delay("alice", 100.5, 2.0) == 0.0  # 1.5 tokens came back in half a second
    assert pace.delay("alice", 100.5, 2.0) > 0


def test_a_refusal_is_never_held_past_its_deadline() -> None:
    pace = RefusalPace(per_second=1, chance=random.Random(1))
    assert pace.delay("alice", 0.0, 5.0) == 0.0
    assert pace.delay("alice", 0.0, 0.0) == 0.0 and pace.delay("alice", 0.0, -1.0) == 0.0
    assert all(pace.delay("alice", 0.0, 0.01) <= 0.01 for _ in range(20))


def test_a_pace_of_zero_refuses_everything_at_once() -> None:
    pace = RefusalPace(per_second=0)
    assert all(pace.delay("alice", 0.0, 3.0) == 0.0 for _ in range(100))


def test_the_pace_forgets_callers_whose_bucket_filled_again() -> None:
    pace = RefusalPace(per_second=1, chance=random.Random(2))
    for index in range(PRUNE_ABOVE + 5):
        pace.delay(f"caller-{index}", 0.0, 1.0)
    pace.delay("late", 10.0, 1.0)
    assert len(pace._buckets) == 1
