"""Unit tests for the per-address counts (circles.address_limits) and the connection's address."""

import pytest
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from circles.address_limits import AttemptWindows, ConnectionCounter
from circles.peer_address import forwarded_for, scope_address


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- ConnectionCounter ---------------------------------------------------------------------


def test_connections_are_counted_per_address_up_to_the_limit() -> None:
    counter = ConnectionCounter()
    slots = [counter.acquire("192.0.2.1", 2) for _ in range(2)]
    assert all(slots) and counter.acquire("192.0.2.1", 2) is None
    assert counter.acquire("192.0.2.2", 2) is not None  # another address has its own count
    slots[0].release()
    assert counter.acquire("192.0.2.1", 2) is not None


def test_a_slot_is_given_back_once() -> None:
    counter = ConnectionCounter()
    first = counter.acquire("192.0.2.1", 2)
    counter.acquire("192.0.2.1", 2)
    first.release()
    first.release()  # a second release (disconnect after a failed connect) must not free another place
    assert counter.open_from("192.0.2.1") == 1
    assert counter.acquire("192.0.2.1", 2) is not None and counter.acquire("192.0.2.1", 2) is None


def test_released_addresses_are_forgotten() -> None:
    counter = ConnectionCounter()
    counter.acquire("192.0.2.1", 5).release()
    assert counter._open == {}


@pytest.mark.parametrize("limit", [0, -1])
def test_no_limit_counts_nothing(limit: int) -> None:
    counter = ConnectionCounter()
    slots = [counter.acquire("192.0.2.1", limit) for _ in range(100)]
    assert all(slot is not None for slot in slots) and counter._open == {}
    for slot in slots:
        slot.release()


def test_an_unknown_address_is_not_limited() -> None:
    counter = ConnectionCounter()
    assert all(counter.acquire(None, 1) is not None for _ in range(3))


@given(st.lists(st.tuples(st.sampled_from("abc"), st.booleans()), max_size=60))
def test_the_count_is_the_slots_held(steps: list[tuple[str, bool]]) -> None:
    counter, held = ConnectionCounter(), {"a": [], "b": [], "c": []}
    for address, open_one in steps:
        if open_one:
            slot = counter.acquire(address, 3)
            assert (slot is None) == (len(held[address]) == 3)
            if slot is not None:
                held[address].append(slot)
        elif held[address]:
            held[address].pop().release()
        assert counter.open_from(address) == len(held[address])


# --- AttemptWindows --------------------------------------------------------------------------


def test_attempts_over_the_limit_in_a_window_are_refused() -> None:
    clock = FakeClock()
    windows = AttemptWindows(60.0, clock)
    assert [windows.attempt("a", 3) for _ in range(5)] == [True, True, True, False, False]
    assert windows.attempt("b", 3)  # its own window


def test_a_window_lasts_from_the_first_attempt() -> None:
    clock = FakeClock()
    windows = AttemptWindows(60.0, clock)
    assert windows.attempt("a", 1)
    clock.now += 59.5
    assert not windows.attempt("a", 1)  # refused attempts do not stretch the window
    clock.now += 0.5
    assert windows.attempt("a", 1)  # a new window, opened by this attempt
    clock.now += 30
    assert not windows.attempt("a", 1)


def test_ended_windows_are_forgotten() -> None:
    clock = FakeClock()
    windows = AttemptWindows(60.0, clock)
    for key in ("a", "b", "c"):
        windows.attempt(key, 1)
    clock.now += 61
    windows.attempt("d", 1)
    assert len(windows) == 1


# --- the connection's address ------------------------------------------------------------------


def scope(client: tuple[str, int] | list | None, *forwarded: str) -> dict:
    return {
        "client": client,
        "headers": [(b"host", b"x"), *((b"x-forwarded-for", f.encode()) for f in forwarded)],
    }


def test_forwarded_for_joins_every_header() -> None:
    assert (
        forwarded_for([(b"X-Forwarded-For", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2")])
        == "1.1.1.1, 2.2.2.2"
    )
    assert forwarded_for([(b"host", b"x")]) is None


def test_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    with override_settings(CIRCLES_TRUSTED_PROXIES=[]):
        assert scope_address(scope(("127.0.0.1", 5000), "203.0.113.1")) == "127.0.0.1"


def test_forwarded_for_from_a_trusted_proxy_names_the_client() -> None:
    with override_settings(CIRCLES_TRUSTED_PROXIES=["127.0.0.1", "10.0.0.0/8"]):
        assert scope_address(scope(("127.0.0.1", 5000), "203.0.113.1")) == "203.0.113.1"
        assert (
            scope_address(scope(["127.0.0.1", 5000], "198.51.100.7, 203.0.113.1, 10.1.2.3")) == "203.0.113.1"
        )
        assert scope_address(scope(("127.0.0.1", 5000), "203.0.113.1", "10.1.2.3")) == "203.0.113.1"
        assert scope_address(scope(("192.0.2.9", 5000), "203.0.113.1")) == "192.0.2.9"  # untrusted peer


def test_an_address_that_cannot_be_told_is_none() -> None:
    assert scope_address(scope(None)) is None
    assert scope_address({"client": None}) is None
