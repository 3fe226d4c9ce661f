"""The drain: `drain_all` asks every live connection to drain itself; refusals are fresh errors."""

import asyncio

from circles import shutdown
from circles.consumer import binary_frame, in_flight_full, over_the_rate
from circles.shutdown import drain_all, shutting_down, track, untrack


class FakeConnection:
    def __init__(self, closing: bool = False, fails: bool = False) -> None:
        self.closing = closing
        self.fails = fails
        self.grace: float | None = None

    async def drain(self, grace: float) -> None:
        self.grace = grace
        if self.fails:
            raise RuntimeError("broken")


def test_every_open_connection_drains_itself_and_one_failure_stops_none() -> None:
    open_one, failing, closing = FakeConnection(), FakeConnection(fails=True), FakeConnection(closing=True)
    for connection in (open_one, failing, closing):
        track(connection)
    try:
        asyncio.run(drain_all(2.5))
    finally:
        for connection in (open_one, failing, closing):
            untrack(connection)
    assert open_one.grace == failing.grace == 2.5
    assert closing.grace is None  # already closing: nothing to drain
    assert not any(connection in shutdown.live for connection in (open_one, failing, closing))


def test_each_refusal_is_a_fresh_error_with_the_same_answer() -> None:
    for build in (shutting_down, in_flight_full, over_the_rate, binary_frame):
        first, second = build(), build()
        assert first is not second
        assert first.to_dict() == second.to_dict()
    assert shutting_down().to_dict() == {
        "code": -32012,
        "message": "Executor unavailable",
        "data": {"reason": "server shutting down"},
    }
