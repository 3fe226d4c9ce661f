"""`rhai.LogTap`: a run's printed lines, taken by another thread while the run goes on."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import rhai


def _take_until(tap: rhai.LogTap, count: int, done: threading.Event) -> list[str]:
    """Take lines until `count` came (or the run ended without them)."""
    lines: list[str] = []
    while len(lines) < count and not done.is_set():
        lines += tap.take()
    return lines + tap.take()


def test_lines_are_taken_while_a_busy_loop_runs_then_it_is_cancelled():
    engine = rhai.Engine(timeout_ms=60_000, max_operations=10**12)
    tap, token, done = rhai.LogTap(), rhai.CancelToken(), threading.Event()

    def run() -> None:
        try:
            engine.eval('print("one"); debug("two"); loop {}', cancel=token, tap=tap)
        finally:
            done.set()

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run)
        seen = _take_until(tap, 2, done)
        assert not done.is_set()  # still in the loop: the lines came while it ran
        token.cancel()
        with pytest.raises(rhai.LimitError) as info:
            future.result()
    assert info.value.kind == "cancelled"
    assert seen == ["one", '"two"']
    assert tap.take() == [] and tap.pending == 0


def test_each_take_returns_only_the_new_lines_and_the_result_keeps_them_all():
    engine = rhai.Engine(timeout_ms=60_000)
    tap, go = rhai.LogTap(), threading.Event()
    engine.register_fn("released", go.is_set)
    done = threading.Event()

    def run() -> rhai.RunResult:
        try:
            return engine.run('print("first"); while !released() {} print("second"); 7', tap=tap)
        finally:
            done.set()

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run)
        first = _take_until(tap, 1, done)
        go.set()
        result = future.result()
    assert first == ["first"]
    assert tap.take() == ["second"]
    assert result.logs == ["first", "second"] and result.value == 7


def test_the_truncation_marker_reaches_the_tap_and_nothing_after_it():
    engine = rhai.Engine(max_output_size=8)
    tap = rhai.LogTap()
    result = engine.run('print("12345"); print("67890"); print("more")', tap=tap)
    assert result.truncated
    assert tap.take() == result.logs == ["12345", "678", "[output truncated: max_output_size reached]"]


def test_one_tap_over_runs_collects_them_in_order_and_runs_without_one_are_unchanged():
    engine = rhai.Engine()
    tap = rhai.LogTap()
    engine.eval('print("a")', tap=tap)
    assert engine.run('print("not tapped"); 1').logs == ["not tapped"]
    engine.eval('print("b")', tap=tap)
    assert tap.pending == 2 and tap.take() == ["a", "b"]


def test_a_nested_run_prints_into_its_own_tap_not_the_outer_one():
    engine = rhai.Engine()
    outer, inner = rhai.LogTap(), rhai.LogTap()
    engine.register_fn("nested", lambda: engine.eval('print("inner"); 1', tap=inner))
    engine.eval('print("before"); nested(); print("after")', tap=outer)
    assert outer.take() == ["before", "after"] and inner.take() == ["inner"]


def test_a_tap_must_be_a_log_tap():
    with pytest.raises(TypeError):
        rhai.Engine().eval("1", tap=[])  # type: ignore[arg-type]
