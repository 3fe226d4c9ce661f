"""Admission control's bookkeeping: passes counted out and back, once; the limit 0 adds nothing."""

from typing import Any

from circles.admission import SCOPE_KEY, AdmissionControl, Gate, release_pass


class Recorder:
    """An inner ASGI app that keeps the scope it was called with and can release its pass."""

    def __init__(self, release_times: int = 0) -> None:
        self.scope: dict[str, Any] | None = None
        self.release_times = release_times

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        for _ in range(self.release_times):
            release_pass(scope)


async def nothing() -> dict[str, Any]:
    return {"type": "websocket.connect"}


async def dropped(message: Any) -> None:
    return None


async def test_a_limit_of_zero_passes_the_connection_on_without_a_pass() -> None:
    inner = Recorder()
    control = AdmissionControl(inner, limit=0, window=10.0)
    await control({"type": "websocket", "path": "/x"}, nothing, dropped)
    assert inner.scope is not None and SCOPE_KEY not in inner.scope
    assert control.gate.in_progress == 0


async def test_a_pass_is_released_once_however_often_the_consumer_releases_it() -> None:
    inner = Recorder(release_times=3)  # one release per response of a signed-in connection
    control = AdmissionControl(inner, limit=5, window=10.0)
    await control({"type": "websocket", "path": "/x"}, nothing, dropped)
    assert inner.scope is not None and SCOPE_KEY not in inner.scope  # gone with its release
    assert control.gate.in_progress == 0


async def test_a_held_pass_counts_until_the_connection_ends() -> None:
    seen: list[int] = []
    control: AdmissionControl

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(control.gate.in_progress)

    control = AdmissionControl(inner, limit=5, window=10.0)
    await control({"type": "websocket", "path": "/x"}, nothing, dropped)
    assert seen == [1]
    assert control.gate.in_progress == 0


def test_the_gate_refuses_past_its_limit() -> None:
    gate = Gate(2)
    first, second = gate.enter(), gate.enter()
    assert first is not None and second is not None
    assert gate.enter() is None
    first.release()
    first.release()  # a second release gives nothing back twice
    assert gate.in_progress == 1
    assert gate.enter() is not None
