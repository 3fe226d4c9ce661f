"""Engine.eval / Engine.run basics, results and the script cache."""

import re
from pathlib import Path

import pytest
import rhai


def test_eval_returns_python_value(engine):
    assert engine.eval("let x = 10; x * 2") == 20


def test_run_result_fields(engine):
    result = engine.run('print("hello"); debug("dbg"); let x = 10; x * 2')
    assert result.value == 20
    assert result.output == "20"
    assert result.logs == ["hello", '"dbg"']
    assert result.truncated is False
    assert result.operations > 0
    assert isinstance(result.elapsed_ms, float)
    assert result.elapsed_ms >= 0.0


@pytest.mark.parametrize(
    ("script", "output"),
    [("()", ""), ('"abc"', "abc"), ("[1, 2]", "[1, 2]"), ("true", "true"), ("1.5", "1.5"), ("'c'", "c")],
)
def test_output_is_rhai_to_string(engine, script, output):
    assert engine.run(script).output == output


def test_constants_visible_at_top_level_and_in_functions(engine):
    assert engine.eval("CALLER_ID + 1", {"CALLER_ID": 41}) == 42
    assert engine.eval("fn me() { CALLER_ID } me()", {"CALLER_ID": 7}) == 7
    assert engine.eval("fn f() { fn_inner() } fn fn_inner() { NAME } f()", {"NAME": "x"}) == "x"


def test_constants_are_per_run(engine):
    assert engine.eval("A", {"A": 1}) == 1
    with pytest.raises(rhai.ScriptError) as info:
        engine.eval("A")
    assert info.value.kind == "runtime"


def test_constants_are_read_only(engine):
    with pytest.raises(rhai.ScriptError):
        engine.eval("A = 5; A", {"A": 1})
    # a script's own variable of the same name shadows the constant, the constant is unchanged
    assert engine.eval("let A = 5; A", {"A": 1}) == 5
    assert engine.eval("A", {"A": 1}) == 1


def test_cached_script_is_not_parsed_again():
    engine = rhai.Engine(cache_size=2)
    script = "let x = 1; x + 1"
    for _ in range(5):
        assert engine.eval(script) == 2
    info = engine.cache_info()
    assert info["misses"] == 1
    assert info["hits"] == 4
    assert info["size"] == 1
    assert info["capacity"] == 2


def test_cache_is_lru():
    engine = rhai.Engine(cache_size=2)
    for s in ("1", "2", "1", "3", "1", "2"):
        engine.eval(s)
    # "2" was evicted by "3" (least recently used), so it is parsed twice; "1" only once
    assert engine.cache_info()["misses"] == 4


def test_cache_disabled_parses_every_time():
    engine = rhai.Engine(cache_size=0)
    for _ in range(3):
        engine.eval("1 + 1")
    assert engine.cache_info()["misses"] == 3


def test_limits_property_reports_configuration():
    engine = rhai.Engine(max_operations=123, timeout_ms=45)
    assert engine.limits["max_operations"] == 123
    assert engine.limits["timeout_ms"] == 45


def test_limits_are_keyword_only():
    with pytest.raises(TypeError):
        rhai.Engine(1000)  # type: ignore[misc]


@pytest.mark.parametrize("name", ["max_operations", "timeout_ms", "max_call_levels", "max_output_size"])
def test_zero_limit_is_refused(name):
    with pytest.raises(ValueError):
        rhai.Engine(**{name: 0})


def documented_defaults() -> dict[str, int]:
    """The defaults column of the limits table in docs/SCRIPTING.md ("Limits and defaults")."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "SCRIPTING.md").read_text()
    section = text.split("## Limits and defaults", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([\d,]+)", section, flags=re.MULTILINE)
    return {name: int(number.replace(",", "")) for name, number in rows}


def test_default_limits_match_documentation():
    """The table in docs/SCRIPTING.md is held against the one source, rhai_py/src/limits.rs."""
    assert rhai.Engine().limits == documented_defaults()


def test_unknown_limit_is_refused():
    with pytest.raises(TypeError, match="max_frobs"):
        rhai.Engine(max_frobs=3)


def test_rhai_version_comes_from_the_build():
    lock = (Path(__file__).resolve().parents[2] / "rhai_py" / "Cargo.lock").read_text()
    assert f'name = "rhai"\nversion = "{rhai.RHAI_VERSION}"' in lock
