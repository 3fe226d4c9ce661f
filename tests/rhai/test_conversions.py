"""The conversion table between Python values and Rhai values (docs/SCRIPTING.md)."""

import math

import pytest
import rhai
from hypothesis import given, settings

from tests.helpers.json_values import I64_MAX, I64_MIN, json_values


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        I64_MIN,
        I64_MAX,
        1.5,
        -0.0,
        "",
        "héllo ✓",
        b"",
        b"\x00\xff",
        [1, "a", None],
        {"a": 1, "b": [True, {"c": 2.5}]},
        [],
        {},
    ],
)
def test_round_trip_through_a_constant(engine, value):
    assert engine.eval("V", {"V": value}) == value


def test_tuple_becomes_list(engine):
    assert engine.eval("V", {"V": (1, (2, 3))}) == [1, [2, 3]]


def test_bytearray_becomes_bytes(engine):
    assert engine.eval("V", {"V": bytearray(b"ab")}) == b"ab"


def test_rhai_types_arrive_as_python_types(engine):
    assert engine.eval("'x'") == "x"  # char -> str
    assert engine.eval("()") is None
    assert engine.eval("blob(3, 7)") == b"\x07\x07\x07"
    assert engine.eval("#{a: 1, b: [2.0]}") == {"a": 1, "b": [2.0]}
    assert type(engine.eval("1")) is int
    assert type(engine.eval("1.0")) is float
    assert type(engine.eval("true")) is bool


def test_values_from_the_script_have_rhai_types(engine):
    assert engine.eval("type_of(V)", {"V": 3}) == "i64"
    assert engine.eval("type_of(V)", {"V": 3.0}) == "f64"
    assert engine.eval("type_of(V)", {"V": None}) == "()"
    assert engine.eval("type_of(V)", {"V": b"x"}) == "blob"
    assert engine.eval("type_of(V)", {"V": (1,)}) == "array"
    assert engine.eval("type_of(V)", {"V": {"k": 1}}) == "map"
    assert engine.eval("type_of(V)", {"V": True}) == "bool"


@pytest.mark.parametrize("big", [2**63, -(2**63) - 1, 10**30])
def test_int_outside_i64_is_an_error_not_a_float(engine, big):
    with pytest.raises(OverflowError):
        engine.eval("V", {"V": big})


def test_integer_overflow_inside_script_is_an_error(engine):
    with pytest.raises(rhai.ScriptError) as info:
        engine.eval(f"{I64_MAX} + 1")
    assert info.value.kind == "runtime"


def test_non_str_dict_keys_are_refused(engine):
    with pytest.raises(TypeError, match="keys must be str"):
        engine.eval("V", {"V": {1: "a"}})


@pytest.mark.parametrize("value", [object(), {1, 2}, 1 + 2j, math])
def test_unsupported_python_types_are_refused(engine, value):
    with pytest.raises(TypeError, match="cannot convert"):
        engine.eval("V", {"V": value})


@pytest.mark.parametrize("script", ['Fn("abs")', "|x| x + 1", "1..3"])
def test_unsupported_rhai_types_are_refused(engine, script):
    with pytest.raises(rhai.ScriptError, match="cannot return") as info:
        engine.eval(script)
    assert info.value.kind == "runtime"


def test_nan_and_inf_are_returned_by_default(engine):
    assert math.isnan(engine.eval("V", {"V": math.nan}))
    assert engine.eval("V", {"V": math.inf}) == math.inf
    assert engine.eval("-V", {"V": math.inf}) == -math.inf


def _nested_list(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_depth_capped_python_to_rhai():
    engine = rhai.Engine(max_value_depth=8)
    assert engine.eval("V", {"V": _nested_list(7)}) == _nested_list(7)
    with pytest.raises(ValueError, match="max_value_depth"):
        engine.eval("V", {"V": _nested_list(8)})


def test_cyclic_python_value_is_refused(engine):
    cyclic = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="max_value_depth"):
        engine.eval("V", {"V": cyclic})


def test_nesting_depth_capped_rhai_to_python():
    engine = rhai.Engine(max_value_depth=8)
    assert engine.eval("let a = []; for i in 0..7 { a = [a]; } a") == _nested_list(7)
    with pytest.raises(rhai.ScriptError, match="max_value_depth"):
        engine.eval("let a = []; for i in 0..8 { a = [a]; } a")


def test_non_str_constant_name_refused(engine):
    with pytest.raises(TypeError):
        engine.eval("1", {1: 2})


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_json_like_values_round_trip(value):
    engine = _SHARED
    assert engine.eval("V", {"V": value}) == value
    # and through a script function and a host function too
    assert engine.eval("fn id(x) { x } id(V)", {"V": value}) == value
    assert engine.eval("echo(V)", {"V": value}) == value


_SHARED = rhai.Engine()
_SHARED.register_fn("echo", lambda x: x)
