"""Each sandbox switch, tested on its own (lupa style: one test per switch)."""

import pytest
import rhai


def test_import_blocked(engine):
    with pytest.raises(rhai.ParseError, match="import") as info:
        engine.eval('import "os" as os; 1')
    assert info.value.kind == "parse"
    assert (info.value.line, info.value.column) == (1, 1)


def test_import_blocked_even_inside_functions(engine):
    with pytest.raises(rhai.ParseError, match="import"):
        engine.eval('fn f() { import "x" as y; 1 } f()')


def test_eval_blocked(engine):
    with pytest.raises(rhai.ParseError, match="eval") as info:
        engine.eval('eval("1 + 1")')
    assert info.value.kind == "parse"


def test_eval_blocked_through_function_pointer(engine):
    with pytest.raises(rhai.RhaiError):
        engine.eval('call(Fn("eval"), "1 + 1")')


def test_sleep_blocked(engine):
    with pytest.raises(rhai.ScriptError, match="sleep") as info:
        engine.eval("sleep(10)")
    assert info.value.kind == "runtime"
    with pytest.raises(rhai.ScriptError, match="sleep"):
        engine.eval("sleep(1.5)")


def test_sleep_blocked_cannot_be_caught(engine):
    with pytest.raises(rhai.ScriptError, match="sleep"):
        engine.eval("try { sleep(5) } catch { 0 }")


def test_print_to_stdout_blocked(engine, capfd):
    result = engine.run('print("secret-print"); debug("secret-debug"); 1')
    out, err = capfd.readouterr()
    assert "secret" not in out
    assert "secret" not in err
    assert result.logs == ["secret-print", '"secret-debug"']


def test_eval_captures_print_silently(engine, capfd):
    assert engine.eval('print("quiet"); 2') == 2
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_time_source_removed(engine):
    with pytest.raises(rhai.ScriptError, match="timestamp"):
        engine.eval("timestamp()")


def test_no_file_or_environment_access(engine):
    for script in ('open("/etc/passwd")', 'env("HOME")', 'read_file("/etc/passwd")', 'system("ls")'):
        with pytest.raises(rhai.ScriptError, match="not found"):
            engine.eval(script)


def test_logs_are_per_run(engine):
    assert engine.run('print("a")').logs == ["a"]
    assert engine.run("1").logs == []
