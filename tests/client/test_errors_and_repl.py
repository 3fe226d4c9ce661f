"""Error mapping and the REPL's entry rules, without a server."""

import pytest

from circles_client import (
    AuthenticationRequired,
    CircleNotFound,
    ConnectionLost,
    ExecutionError,
    ExecutorUnavailable,
    Forbidden,
    InternalError,
    InvalidCredentials,
    InvalidParams,
    InvalidRequest,
    JobNotFound,
    MethodNotFound,
    ParseError,
    RateLimited,
    RpcError,
    TooManyRequests,
    TooManyUnreadNotifications,
    WrongJobState,
    websocket_url,
)
from circles_client.errors import connection_error
from circles_client.output import exit_code_for, format_json, one_line_error
from circles_client.repl import join_line, needs_more


@pytest.mark.parametrize(
    ("code", "klass"),
    [
        (-32700, ParseError),
        (-32600, InvalidRequest),
        (-32601, MethodNotFound),
        (-32602, InvalidParams),
        (-32603, InternalError),
        (-32000, ExecutionError),
        (-32001, AuthenticationRequired),
        (-32002, InvalidCredentials),
        (-32003, Forbidden),
        (-32004, JobNotFound),
        (-32005, WrongJobState),
        (-32012, ExecutorUnavailable),
        (-32029, RateLimited),
    ],
)
def test_each_code_has_its_class(code: int, klass: type) -> None:
    error = RpcError.from_response({"code": code, "message": "m"})
    assert type(error) is klass and error.rpc_code == code and klass.code == code


def test_unknown_codes_stay_plain_rpc_errors() -> None:
    error = RpcError.from_response({"code": -31999, "message": "new", "data": {"x": 1}})
    assert type(error) is RpcError and str(error) == "new (-31999): x=1"


def test_execution_error_fields_and_one_line() -> None:
    data = {"kind": "runtime", "message": "Function not found: +", "line": 2, "column": 13}
    error = RpcError.from_response({"code": -32000, "message": "Execution error", "data": data})
    assert (error.kind, error.line, error.column) == ("runtime", 2, 13)
    assert error.message == "Function not found: +"
    assert error.rpc_message == "Execution error"
    assert one_line_error(error) == (
        "error: ExecutionError: runtime error at line 2, column 13: Function not found: +"
    )
    assert exit_code_for(error) == 1


@pytest.mark.parametrize(
    ("code", "klass"),
    [
        (4404, CircleNotFound),
        (4408, TooManyUnreadNotifications),
        (4429, TooManyRequests),
        (1012, ConnectionLost),
        (None, ConnectionLost),
    ],
)
def test_close_codes(code: int | None, klass: type) -> None:
    error = connection_error(code, "why", context="closed")
    assert type(error) is klass and error.close_code == code and exit_code_for(error) == 3


def test_job_errors_carry_the_job_and_its_status() -> None:
    missing = RpcError.from_response({"code": -32004, "message": "Job not found", "data": {"job_id": "j1"}})
    state = {"code": -32005, "message": "Wrong job state", "data": {"status": "started"}}
    wrong = RpcError.from_response(state)
    assert missing.job_id == "j1" and wrong.status == "started"
    assert str(wrong) == "Wrong job state (-32005): status=started" and exit_code_for(wrong) == 1


def test_urls_and_json() -> None:
    assert websocket_url("http://h:1/03ab") == "ws://h:1/03ab"
    assert websocket_url("https://h/03ab") == "wss://h/03ab"
    assert websocket_url("ws://h/03ab") == "ws://h/03ab"
    assert format_json({"a": [1, "é"]}, pretty=False) == '{"a":[1,"é"]}'
    assert format_json({"a": 1}, pretty=True) == '{\n  "a": 1\n}'


@pytest.mark.parametrize(
    ("source", "more"),
    [
        ("1 + 1", False),
        ("fn f(x) {", True),
        ("fn f(x) {\n  x * 2\n}", False),
        ("let a = [1,", True),
        ("foo(1,", True),
        ('let s = "{";', False),
        ("let c = '[';", False),
        ('let s = "a \\" {";', False),
        ("let s = `multi", True),
        ("let s = `multi\nline`;", False),
        ("1 // {", False),
        ("/* { */ 1", False),
        ("/* open", True),
        ("/* /* nested */ still", True),
        ("}", False),
    ],
)
def test_needs_more(source: str, more: bool) -> None:
    assert needs_more(source) is more


def test_trailing_backslash_continues() -> None:
    buffer: list[str] = []
    assert join_line(buffer, "let a = 20; \\") is False
    assert join_line(buffer, "a + 1") is True
    assert "\n".join(buffer) == "let a = 20; \na + 1"
