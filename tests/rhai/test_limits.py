"""Resource limits: timeout, memory, stack (also on small thread stacks), output cap."""

import threading
import time

import pytest
import rhai


def test_timeout_stops_infinite_loop_at_its_deadline():
    engine = rhai.Engine(timeout_ms=500, max_operations=10**12)
    start = time.perf_counter()
    with pytest.raises(rhai.LimitError) as info:
        engine.eval("loop {}")
    elapsed = time.perf_counter() - start
    assert info.value.kind == "timeout"
    assert elapsed >= 0.45  # not early; how late depends on the machine's load, so only loosely bounded
    assert elapsed < 2.0


def test_timeout_inside_script_function():
    engine = rhai.Engine(timeout_ms=100, max_operations=10**12)
    with pytest.raises(rhai.LimitError) as info:
        engine.eval("fn spin(n) { while true { n += 1; } }\nspin(0)")
    assert info.value.kind == "timeout"


def test_timeout_is_not_catchable():
    engine = rhai.Engine(timeout_ms=100, max_operations=10**12)
    with pytest.raises(rhai.LimitError) as info:
        engine.eval("let n = 0; loop { try { n += 1; } catch { } }")
    assert info.value.kind == "timeout"


def test_operations_limit_is_distinct_from_timeout():
    engine = rhai.Engine(timeout_ms=60_000, max_operations=10_000)
    with pytest.raises(rhai.LimitError) as info:
        engine.eval("loop {}")
    assert info.value.kind == "operations"


def test_operations_are_counted(engine):
    small = engine.run("1").operations
    big = engine.run("let x = 0; for i in 0..100 { x += i; } x").operations
    assert 0 < small < big


def test_timeout_checked_after_slow_host_call():
    engine = rhai.Engine(timeout_ms=50, max_operations=10**12)
    engine.register_fn("slow", lambda: time.sleep(0.1))
    with pytest.raises(rhai.LimitError) as info:
        engine.eval("slow(); 1")
    assert info.value.kind == "timeout"


def _rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_string_doubling_stops_with_small_memory_growth(engine):
    before = _rss_bytes()
    with pytest.raises(rhai.LimitError) as info:
        engine.eval('let s = "x"; loop { s += s; }')
    assert info.value.kind == "data_size"
    assert _rss_bytes() - before < 64 * 1024 * 1024


def test_array_doubling_stops_with_small_memory_growth(engine):
    before = _rss_bytes()
    with pytest.raises(rhai.LimitError) as info:
        engine.eval("let a = [1]; loop { a += a; }")
    assert info.value.kind == "data_size"
    assert _rss_bytes() - before < 64 * 1024 * 1024


def _in_thread(fn, stack_size=None):
    """Run fn() in a new thread (optionally with a small stack); return its result/exception."""
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    old = threading.stack_size()
    if stack_size:
        threading.stack_size(stack_size)
    try:
        t = threading.Thread(target=target)
        t.start()
    finally:
        threading.stack_size(old)
    t.join(60)
    assert not t.is_alive()
    return box


DEEP_SCRIPTS = [
    "fn f(n) { f(n + 1) } f(0)",
    "(" * 10_000 + "1" + ")" * 10_000,
    "[" * 10_000 + "]" * 10_000,
    "fn f(n) { if n > 0 { 1 + f(n - 1) } else { 0 } } f(100000)",
]


@pytest.mark.parametrize("script", DEEP_SCRIPTS)
def test_deep_scripts_stop_cleanly_in_small_stack_thread(script):
    engine = rhai.Engine()
    box = _in_thread(lambda: engine.eval(script), stack_size=256 * 1024)
    assert isinstance(box.get("error"), rhai.RhaiError)
    assert box["error"].kind in ("stack", "parse")


@pytest.mark.parametrize("script", DEEP_SCRIPTS)
def test_deep_scripts_with_maximal_limits_do_not_crash(script):
    """Even with call depth far above the stack's capacity, the stack guard stops the run."""
    engine = rhai.Engine(
        max_call_levels=1_000_000, max_expr_depth=512, max_operations=10**9, timeout_ms=20_000
    )
    box = _in_thread(lambda: engine.eval(script), stack_size=256 * 1024)
    assert isinstance(box.get("error"), rhai.RhaiError)
    assert box["error"].kind in ("stack", "parse")


def test_deeply_nested_value_built_at_runtime_in_small_stack_thread():
    """Walking or dropping a 3,000-deep array recurses 3,000 times: it must happen on the
    run's guaranteed stack, not on the caller's 128 KiB one."""
    engine = rhai.Engine(max_operations=10**8, timeout_ms=20_000, max_array_size=3000)
    box = _in_thread(lambda: engine.eval("let a = []; loop { a = [a]; }"), stack_size=128 * 1024)
    assert box["error"].kind == "data_size"
    script = "let a = []; for i in 0..2900 { a = [a]; } a"
    box = _in_thread(lambda: engine.eval(script), stack_size=128 * 1024)
    assert box["error"].kind == "runtime"
    assert "max_value_depth" in box["error"].message


def test_max_call_levels():
    engine = rhai.Engine(max_call_levels=10)
    assert engine.eval("fn f(n) { if n == 0 { 0 } else { f(n - 1) } } f(5)") == 0
    with pytest.raises(rhai.LimitError) as info:
        engine.eval("fn f(n) { if n == 0 { 0 } else { f(n - 1) } } f(50)")
    assert info.value.kind == "stack"


def test_max_expr_depth():
    engine = rhai.Engine(max_expr_depth=10)
    assert engine.eval("((1))") == 1
    with pytest.raises(rhai.LimitError) as info:
        engine.eval("(" * 20 + "1" + ")" * 20)
    assert info.value.kind == "stack"


def test_max_string_size():
    engine = rhai.Engine(max_string_size=10)
    assert engine.eval('"0123456789"') == "0123456789"
    with pytest.raises(rhai.LimitError) as info:
        engine.eval('let s = "0123456789"; s += "x"; s')
    assert info.value.kind == "data_size"


def test_max_array_size():
    engine = rhai.Engine(max_array_size=3)
    assert engine.eval("let a = [1, 2]; a.push(3); a") == [1, 2, 3]
    with pytest.raises(rhai.LimitError) as info:
        engine.eval("let a = [1, 2]; a.push(3); a.push(4); a")
    assert info.value.kind == "data_size"


def test_output_cap_truncates_with_marker():
    engine = rhai.Engine(max_output_size=10)
    result = engine.run('print("12345"); print("67890"); print("abc"); print("more"); 1')
    assert result.value == 1
    assert result.truncated is True
    assert result.logs[:2] == ["12345", "67890"]
    assert result.logs[-1].startswith("[output truncated")
    assert len(result.logs) == 3
    assert sum(len(line.encode()) for line in result.logs[:-1]) <= 10


def test_output_cap_cuts_inside_a_line_on_a_char_boundary():
    engine = rhai.Engine(max_output_size=5)
    result = engine.run('print("ab€€"); 1')  # 2 + 3 + 3 bytes
    assert result.logs[0] == "ab€"
    assert result.truncated


def test_output_cap_stops_a_print_loop_from_growing_memory():
    engine = rhai.Engine(max_output_size=1000, max_operations=200_000)
    with pytest.raises(rhai.LimitError):
        engine.run('loop { print("spam spam spam"); }')
    result = rhai.Engine(max_output_size=1000).run('for i in 0..1000 { print("spam spam spam"); } 0')
    assert result.truncated
    assert sum(len(line) for line in result.logs[:-1]) <= 1000


def test_per_run_timeout_shortens_the_engines() -> None:
    engine = rhai.Engine(timeout_ms=10_000, max_operations=10**15)
    started = time.monotonic()
    with pytest.raises(rhai.LimitError) as stopped:
        engine.run("loop {}", timeout_ms=200)
    assert stopped.value.kind == "timeout"
    assert time.monotonic() - started < 2.0
    assert engine.run("1 + 1", timeout_ms=200).value == 2  # the next run has the engine's timeout again


def test_per_run_timeout_cannot_lengthen_the_engines() -> None:
    engine = rhai.Engine(timeout_ms=200, max_operations=10**15)
    started = time.monotonic()
    with pytest.raises(rhai.LimitError) as stopped:
        engine.eval("loop {}", timeout_ms=60_000)
    assert stopped.value.kind == "timeout" and time.monotonic() - started < 2.0
    with pytest.raises(ValueError):
        engine.eval("1", timeout_ms=0)
