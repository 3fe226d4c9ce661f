"""Every error kind, its class and its line/column."""

import pytest
import rhai


def _error(engine, script, cls=rhai.RhaiError, **kwargs):
    with pytest.raises(cls) as info:
        engine.eval(script, **kwargs)
    return info.value


def test_hierarchy():
    assert issubclass(rhai.RhaiError, Exception)
    for cls in (rhai.ParseError, rhai.ScriptError, rhai.LimitError):
        assert issubclass(cls, rhai.RhaiError)
    assert issubclass(rhai.HostError, rhai.ScriptError)
    assert set(rhai.KINDS) == {
        "parse",
        "runtime",
        "throw",
        "host",
        "operations",
        "timeout",
        "stack",
        "data_size",
        "variables",
        "functions",
        "source_size",
        "memory",
        "cancelled",
    }


def test_parse_error(engine):
    err = _error(engine, "let a = 1;\nlet x = ;", rhai.ParseError)
    assert err.kind == "parse"
    assert (err.line, err.column) == (2, 9)
    assert err.message
    assert str(err) == f"[parse] {err.message} (line 2, column 9)"


def test_runtime_error(engine):
    err = _error(engine, 'let a = 1;\nlet b = a + "x" * 2;', rhai.ScriptError)
    assert err.kind == "runtime"
    assert err.line == 2
    assert err.column is not None
    assert err.value is None


def test_runtime_error_inside_function_reports_innermost(engine):
    script = "fn f(a) {\n  let x = [1, 2];\n  x[a]\n}\nlet y = 0;\nf(10)"
    err = _error(engine, script, rhai.ScriptError)
    assert err.kind == "runtime"
    assert "out of bounds" in err.message.lower()
    assert (err.line, err.column) == (3, 5)  # the index expression


def test_throw_carries_value(engine):
    err = _error(engine, 'let x = 1;\nif x > 0 { throw #{code: 42, why: "no"} }', rhai.ScriptError)
    assert err.kind == "throw"
    assert err.value == {"code": 42, "why": "no"}
    assert (err.line, err.column) == (2, 12)


def test_throw_inside_function_reports_innermost(engine):
    err = _error(engine, 'fn f() {\n    throw "deep"\n}\nf()', rhai.ScriptError)
    assert err.kind == "throw"
    assert err.value == "deep"
    assert err.message == "deep"
    assert (err.line, err.column) == (2, 5)


def test_caught_throw_is_not_an_error(engine):
    assert engine.eval('let r = ""; try { throw "x" } catch (e) { r = e + "!" } r') == "x!"


def test_operations():
    engine = rhai.Engine(max_operations=1000)
    err = _error(engine, "let x = 0;\nloop { x += 1; }", rhai.LimitError)
    assert err.kind == "operations"
    assert err.line == 2


def test_operations_inside_function():
    engine = rhai.Engine(max_operations=1000)
    err = _error(engine, "fn spin() { loop {} }\nspin()", rhai.LimitError)
    assert err.kind == "operations"


def test_stack_recursion(engine):
    err = _error(engine, "fn f(n) { f(n + 1) }\nf(0)", rhai.LimitError)
    assert err.kind == "stack"
    assert err.line is not None


def test_stack_nested_source(engine):
    err = _error(engine, "(" * 10_000 + "1" + ")" * 10_000, rhai.LimitError)
    assert err.kind == "stack"
    assert err.line == 1


def test_data_size_string(engine):
    err = _error(engine, 'let s = "x";\nloop { s += s; }', rhai.LimitError)
    assert err.kind == "data_size"
    assert err.line == 2


def test_data_size_array():
    engine = rhai.Engine(max_array_size=100)
    err = _error(engine, "let a = [];\nloop { a.push(1); }", rhai.LimitError)
    assert err.kind == "data_size"


def test_data_size_map():
    engine = rhai.Engine(max_map_size=10)
    # (Rhai checks the map's size when it is next used, not on `m[new_key] = v` itself)
    err = _error(engine, "let m = #{};\nfor i in 0..100 { m[`k${i}`] = i; m.len(); }", rhai.LimitError)
    assert err.kind == "data_size"


def test_variables():
    engine = rhai.Engine(max_variables=3)
    assert engine.eval("let a = 1; let b = 2; let c = 3; a + b + c") == 6
    err = _error(engine, "let a = 1; let b = 2; let c = 3;\nlet d = 4;", rhai.LimitError)
    assert err.kind == "variables"
    assert err.line == 2


def test_functions():
    engine = rhai.Engine(max_functions=2)
    assert engine.eval("fn a() { 1 } fn b() { 2 } a() + b()") == 3
    err = _error(engine, "fn a() { 1 }\nfn b() { 2 }\nfn c() { 3 }\n1", rhai.LimitError)
    assert err.kind == "functions"
    assert err.line == 3


def test_source_size():
    engine = rhai.Engine(max_source_size=20)
    assert engine.eval("1 + 2") == 3
    err = _error(engine, "let x = 1; " * 5, rhai.LimitError)
    assert err.kind == "source_size"
    assert err.line is None and err.column is None
    assert err.to_dict() == {"kind": "source_size", "message": err.message, "line": None, "column": None}


def test_run_raises_like_eval(engine):
    with pytest.raises(rhai.ParseError):
        engine.run("let = ;")
