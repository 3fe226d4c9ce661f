"""Python functions registered into Rhai: values in and out, arities, modules, exceptions."""

import gc
import weakref

import pytest
import rhai


def test_values_in_and_out(engine):
    seen = []

    def record(*args):
        seen.append(args)
        return {"n": len(args), "args": list(args)}

    engine.register_fn("record", record)
    result = engine.eval('record(1, 2.5, "s", true, (), [1], #{k: "v"}, blob(1, 9), \'c\')')
    assert seen == [(1, 2.5, "s", True, None, [1], {"k": "v"}, b"\x09", "c")]
    assert result["n"] == 9


def test_return_value_is_a_rhai_value(engine):
    engine.register_fn("make", lambda: {"list": [1, 2, 3], "name": "x"})
    assert engine.eval("let m = make(); m.list.len() + m.name.len()") == 4
    assert engine.eval("type_of(make().list)") == "array"


def test_module_namespaced_functions(engine):
    store = {"a": 1}
    engine.register_fn("get", lambda key: store.get(key), module="db")
    engine.register_fn("put", lambda key, value: store.__setitem__(key, value), module="db")
    assert engine.eval('db::put("b", 2); db::get("a") + db::get("b")') == 3
    assert store == {"a": 1, "b": 2}
    # not visible without the namespace
    with pytest.raises(rhai.ScriptError, match="not found"):
        engine.eval('get("a")')


def test_several_namespaces_and_global(engine):
    engine.register_fn("f", lambda: "db", module="db")
    engine.register_fn("f", lambda: "kv", module="kv")
    engine.register_fn("f", lambda: "global")
    assert engine.eval("[db::f(), kv::f(), f()]") == ["db", "kv", "global"]


def test_arity_from_defaults(engine):
    engine.register_fn("greet", lambda name, greeting="hello": f"{greeting} {name}")
    assert engine.eval('greet("bob")') == "hello bob"
    assert engine.eval('greet("bob", "hi")') == "hi bob"
    with pytest.raises(rhai.ScriptError, match="not found"):
        engine.eval('greet("a", "b", "c")')


def test_varargs_register_up_to_max_arity(engine):
    engine.register_fn("count", lambda *args: len(args))
    assert engine.eval("count()") == 0
    assert engine.eval("count(1, 2, 3)") == 3
    args = ", ".join(["1"] * rhai.MAX_ARITY)
    assert engine.eval(f"count({args})") == rhai.MAX_ARITY


def test_explicit_arity_for_callables_without_signature(engine):
    engine.register_fn("maxof", max, arity=2)
    assert engine.eval("maxof(3, 9)") == 9


def test_keyword_only_without_default_is_refused(engine):
    def f(a, *, b):
        return a

    with pytest.raises(TypeError, match="keyword-only"):
        engine.register_fn("f", f)


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a::b", None])
def test_invalid_names_are_refused(engine, name):
    with pytest.raises(ValueError):
        engine.register_fn(name, lambda: 1)


def test_reregistering_replaces(engine):
    engine.register_fn("v", lambda: 1)
    assert engine.eval("v()") == 1
    engine.register_fn("v", lambda: 2)
    assert engine.eval("v()") == 2


def test_exception_becomes_host_error_with_position(engine):
    def boom(x):
        raise ValueError(f"bad value {x}")

    engine.register_fn("boom", boom)
    with pytest.raises(rhai.HostError) as info:
        engine.eval("let a = 1;\nlet b = 2;\n  boom(a + b)")
    err = info.value
    assert isinstance(err, rhai.ScriptError)
    assert err.kind == "host"
    assert err.message == "bad value 3"
    assert (err.line, err.column) == (3, 3)
    assert isinstance(err.__cause__, ValueError)
    assert err.to_dict() == {"kind": "host", "message": "bad value 3", "line": 3, "column": 3}


def test_host_error_inside_script_function_reports_innermost_position(engine):
    def boom():
        raise KeyError("missing")

    engine.register_fn("fetch", boom, module="db")
    script = "fn inner() {\n    db::fetch()\n}\nfn outer() { inner() }\nouter()"
    with pytest.raises(rhai.HostError) as info:
        engine.eval(script)
    assert info.value.kind == "host"
    assert (info.value.line, info.value.column) == (2, 9)


def test_host_error_cannot_be_swallowed_by_try_catch(engine):
    def boom():
        raise RuntimeError("db down")

    engine.register_fn("boom", boom)
    with pytest.raises(rhai.HostError, match="db down"):
        engine.eval('try { boom(); } catch (e) { "swallowed" }')
    with pytest.raises(rhai.HostError):
        engine.eval("fn f() { boom() } let r = 0; try { r = f(); } catch { r = -1; } r")


def test_exception_with_empty_message_uses_type_name(engine):
    def boom():
        raise LookupError

    engine.register_fn("boom", boom)
    with pytest.raises(rhai.HostError) as info:
        engine.eval("boom()")
    assert info.value.message == "LookupError"


def test_unconvertible_return_value_is_a_host_error(engine):
    engine.register_fn("bad", lambda: object())
    with pytest.raises(rhai.HostError, match="return value of bad"):
        engine.eval("bad()")


def test_unconvertible_argument_is_a_host_error(engine):
    engine.register_fn("take", lambda f: 1)
    with pytest.raises(rhai.HostError, match="argument 1 of take"):
        engine.eval('take(Fn("abs"))')


def test_keyboard_interrupt_is_not_wrapped(engine):
    def stop():
        raise KeyboardInterrupt

    engine.register_fn("stop", stop)
    with pytest.raises(KeyboardInterrupt):
        engine.eval("stop()")


def test_callback_can_run_another_script(engine):
    """Re-entrancy: a host function may use the engine; the outer run's state is kept."""
    engine.register_fn("inner", lambda: engine.run('print("inner"); A', {"A": 5}).value)
    result = engine.run('print("before"); let x = inner(); print("after"); x + A', {"A": 100})
    assert result.value == 105
    assert result.logs == ["before", "after"]


def test_engine_and_callback_cycle_is_collected():
    class UsesEngine:
        def __init__(self, engine):
            self.engine = engine  # engine -> callback -> engine

        def __call__(self):
            return self.engine.eval("1")

    engine = rhai.Engine()
    callback = UsesEngine(engine)
    engine.register_fn("uses_engine", callback, arity=0)
    assert engine.eval("uses_engine() + 1") == 2
    ref = weakref.ref(callback)
    del engine, callback
    gc.collect()
    assert ref() is None


def test_registration_after_runs_clears_cache_and_applies(engine):
    with pytest.raises(rhai.ScriptError):
        engine.eval("late()")
    engine.register_fn("late", lambda: 7)
    assert engine.eval("late()") == 7
