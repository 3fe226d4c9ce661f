"""Unit tests for circles.jsonrpc: framing, validation and response building (no database).

The first part replays every example of the JSON-RPC 2.0 specification, section 7
(https://www.jsonrpc.org/specification#examples), through `parse_frame` and the real
`circles.answering.answer` with a toy method table, and compares the encoded answer with the
specification's. Our error objects add a `data` member (allowed by the specification); the
comparison drops it and `test_error_data_*` checks it separately.
"""

import json
import logging
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circles import jsonrpc
from circles.answering import answer
from circles.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    Frame,
    InvalidEntry,
    Request,
    RpcError,
    encode,
    failure,
    parse_entry,
    parse_frame,
    success,
)
from circles.registry import Method, MethodRegistry, Param

STANDARD_CODES = {PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR}
LOG = logging.LoggerAdapter(logging.getLogger("tests.jsonrpc"), {})


# --- the specification's method table ---------------------------------------------------------


async def _subtract(session: Any, minuend: int, subtrahend: int) -> int:
    return minuend - subtrahend


async def _sum(session: Any, **numbers: int) -> int:
    return sum(numbers.values())


async def _ignore(session: Any, **params: Any) -> None:
    return None


async def _get_data(session: Any) -> list[Any]:
    return ["hello", 5]


def _integers(*names: str, required: bool = True) -> tuple[Param, ...]:
    return tuple(Param(name, "integer", required=required) for name in names)


SPEC_METHODS = MethodRegistry()
SPEC_METHODS.add(Method("subtract", _subtract, "minuend - subtrahend", _integers("minuend", "subtrahend")))
SPEC_METHODS.add(Method("sum", _sum, "sum of up to 5", _integers("a", "b", "c", "d", "e", required=False)))
SPEC_METHODS.add(Method("update", _ignore, "notification", _integers("a", "b", "c", "d", "e")))
SPEC_METHODS.add(Method("notify_hello", _ignore, "notification", _integers("a")))
SPEC_METHODS.add(Method("notify_sum", _ignore, "notification", _integers("a", "b", "c")))
SPEC_METHODS.add(Method("get_data", _get_data, "constant"))


async def respond(text: str | bytes, *, max_batch: int = 20) -> str | None:
    """What the server sends back for one frame (None: nothing), as the consumer builds it."""
    try:
        frame = parse_frame(text, max_batch=max_batch)
    except RpcError as error:
        return encode(failure(None, error))
    responses = []
    for entry in frame.entries:
        if isinstance(entry, InvalidEntry):
            responses.append(failure(entry.id, entry.error))
        else:
            response = await answer(SPEC_METHODS, None, entry, LOG)  # type: ignore[arg-type]
            if response is not None:
                responses.append(response)
    if frame.is_batch:
        return encode(responses) if responses else None
    return encode(responses[0]) if responses else None


def without_data(message: Any) -> Any:
    """The response(s) with `error.data` removed, for comparison with the specification's text."""
    if isinstance(message, list):
        return [without_data(item) for item in message]
    if "error" in message:
        message = {**message, "error": {k: v for k, v in message["error"].items() if k != "data"}}
    return message


async def exchange(request: str) -> Any:
    reply = await respond(request)
    return None if reply is None else without_data(json.loads(reply))


# --- section 7, one example each --------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        (
            '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
            {"jsonrpc": "2.0", "result": 19, "id": 1},
        ),
        (
            '{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
            {"jsonrpc": "2.0", "result": -19, "id": 2},
        ),
    ],
)
async def test_spec_positional_parameters(request_text: str, expected: dict) -> None:
    assert await exchange(request_text) == expected


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        (
            '{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
            {"jsonrpc": "2.0", "result": 19, "id": 3},
        ),
        (
            '{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}',
            {"jsonrpc": "2.0", "result": 19, "id": 4},
        ),
    ],
)
async def test_spec_named_parameters(request_text: str, expected: dict) -> None:
    assert await exchange(request_text) == expected


@pytest.mark.parametrize(
    "request_text",
    [
        '{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}',
        '{"jsonrpc": "2.0", "method": "foobar"}',
    ],
)
async def test_spec_notification(request_text: str) -> None:
    frame = parse_frame(request_text, max_batch=20)
    assert not frame.is_batch
    (entry,) = frame.entries
    assert isinstance(entry, Request) and entry.is_notification and entry.id is None
    assert await respond(request_text) is None


async def test_spec_non_existent_method() -> None:
    assert await exchange('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}') == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "Method not found"},
        "id": "1",
    }


async def test_spec_invalid_json() -> None:
    text = '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]'
    with pytest.raises(RpcError) as raised:
        parse_frame(text, max_batch=20)
    assert raised.value.code == PARSE_ERROR
    assert await exchange(text) == {
        "jsonrpc": "2.0",
        "error": {"code": -32700, "message": "Parse error"},
        "id": None,
    }


async def test_spec_invalid_request_object() -> None:
    text = '{"jsonrpc": "2.0", "method": 1, "params": "bar"}'
    (entry,) = parse_frame(text, max_batch=20).entries
    assert isinstance(entry, InvalidEntry) and entry.error.code == INVALID_REQUEST
    assert await exchange(text) == {
        "jsonrpc": "2.0",
        "error": {"code": -32600, "message": "Invalid Request"},
        "id": None,
    }


async def test_spec_batch_invalid_json() -> None:
    text = """[
  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
  {"jsonrpc": "2.0", "method"
]"""
    assert await exchange(text) == {
        "jsonrpc": "2.0",
        "error": {"code": -32700, "message": "Parse error"},
        "id": None,
    }


async def test_spec_empty_array() -> None:
    with pytest.raises(RpcError) as raised:
        parse_frame("[]", max_batch=20)
    assert raised.value.code == INVALID_REQUEST
    # A single error object, not an array.
    assert await exchange("[]") == {
        "jsonrpc": "2.0",
        "error": {"code": -32600, "message": "Invalid Request"},
        "id": None,
    }


async def test_spec_invalid_batch_of_one() -> None:
    frame = parse_frame("[1]", max_batch=20)
    assert frame.is_batch and len(frame.entries) == 1
    assert await exchange("[1]") == [
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}
    ]


async def test_spec_invalid_batch() -> None:
    error = {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}
    assert await exchange("[1,2,3]") == [error, error, error]


async def test_spec_mixed_batch() -> None:
    text = """[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
    ]"""
    frame = parse_frame(text, max_batch=20)
    assert frame.is_batch
    assert [type(entry) for entry in frame.entries] == [
        Request,
        Request,
        Request,
        InvalidEntry,
        Request,
        Request,
    ]
    assert await exchange(text) == [
        {"jsonrpc": "2.0", "result": 7, "id": "1"},
        {"jsonrpc": "2.0", "result": 19, "id": "2"},
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
        {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"},
    ]


async def test_spec_all_notification_batch() -> None:
    text = """[
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ]"""
    frame = parse_frame(text, max_batch=20)
    assert all(isinstance(e, Request) and e.is_notification for e in frame.entries)
    assert await respond(text) is None


# --- error data -----------------------------------------------------------------------------------


def test_error_data_of_a_parse_error() -> None:
    with pytest.raises(RpcError) as raised:
        parse_frame("{", max_batch=20)
    assert raised.value.to_dict() == {
        "code": -32700,
        "message": "Parse error",
        "data": {"reason": "invalid JSON"},
    }


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (1, "a request must be an object"),
        ("whoami", "a request must be an object"),
        (None, "a request must be an object"),
        ([], "a request must be an object"),
        (
            {"jsonrpc": "2.0", "method": "m", "id": True},
            "id must be a string, a number that fits in 53 bits, or null",
        ),
        (
            {"jsonrpc": "2.0", "method": "m", "id": {}},
            "id must be a string, a number that fits in 53 bits, or null",
        ),
        (
            {"jsonrpc": "2.0", "method": "m", "id": []},
            "id must be a string, a number that fits in 53 bits, or null",
        ),
        ({"method": "m", "id": 1}, 'jsonrpc must be "2.0"'),
        ({"jsonrpc": "1.0", "method": "m", "id": 1}, 'jsonrpc must be "2.0"'),
        ({"jsonrpc": 2.0, "method": "m", "id": 1}, 'jsonrpc must be "2.0"'),
        ({"jsonrpc": "2.0", "id": 1}, "method must be a string"),
        ({"jsonrpc": "2.0", "method": None, "id": 1}, "method must be a string"),
        ({"jsonrpc": "2.0", "method": ["m"], "id": 1}, "method must be a string"),
        ({"jsonrpc": "2.0", "method": "m", "params": "bar", "id": 1}, "params must be an array or an object"),
        ({"jsonrpc": "2.0", "method": "m", "params": 3, "id": 1}, "params must be an array or an object"),
        ({"jsonrpc": "2.0", "method": "m", "params": True, "id": 1}, "params must be an array or an object"),
    ],
)
def test_error_data_of_invalid_requests(obj: Any, reason: str) -> None:
    entry = parse_entry(obj)
    assert isinstance(entry, InvalidEntry)
    assert entry.error.to_dict() == {"code": -32600, "message": "Invalid Request", "data": {"reason": reason}}


def test_invalid_request_echoes_a_valid_id_and_nulls_an_invalid_one() -> None:
    assert parse_entry({"jsonrpc": "1.0", "method": "m", "id": 7}).id == 7
    assert parse_entry({"jsonrpc": "2.0", "method": 5, "id": "x"}).id == "x"
    assert parse_entry({"jsonrpc": "2.0", "method": "m", "params": 1, "id": 2.5}).id == 2.5
    assert parse_entry({"jsonrpc": "2.0", "method": "m", "id": True}).id is None
    assert parse_entry({"jsonrpc": "1.0", "method": "m"}).id is None


# --- ids ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_id",
    ["1", "", "ünïcødé ✓", 0, -1, 42, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, -0.25, 2.0**52, None],
)
def test_valid_ids_are_echoed_exactly(request_id: Any) -> None:
    text = json.dumps({"jsonrpc": "2.0", "method": "whoami", "id": request_id})
    (entry,) = parse_frame(text, max_batch=20).entries
    assert isinstance(entry, Request)
    assert entry.id == request_id and type(entry.id) is type(request_id)
    assert not entry.is_notification
    echoed = orjson.loads(encode(success(entry.id, True)))["id"]
    assert echoed == request_id and type(echoed) is type(request_id)


def test_null_id_is_a_request_and_missing_id_is_a_notification() -> None:
    with_null = parse_entry({"jsonrpc": "2.0", "method": "m", "id": None})
    without = parse_entry({"jsonrpc": "2.0", "method": "m"})
    assert isinstance(with_null, Request) and not with_null.is_notification
    assert isinstance(without, Request) and without.is_notification
    assert with_null.id is None and without.id is None


@pytest.mark.parametrize("request_id", [True, False, {}, {"a": 1}, [], [1]])
def test_bool_object_and_array_ids_are_refused(request_id: Any) -> None:
    entry = parse_entry({"jsonrpc": "2.0", "method": "m", "id": request_id})
    assert isinstance(entry, InvalidEntry)
    assert entry.error.code == INVALID_REQUEST and entry.id is None


# --- requests ----------------------------------------------------------------------------------------


def test_request_fields() -> None:
    entry = parse_entry({"jsonrpc": "2.0", "method": "fetch_nonce", "params": ["02ab"], "id": 9})
    assert entry == Request(method="fetch_nonce", params=["02ab"], id=9, is_notification=False)
    entry = parse_entry({"jsonrpc": "2.0", "method": "fetch_nonce", "params": {"pubkey": "02ab"}})
    assert entry == Request(method="fetch_nonce", params={"pubkey": "02ab"}, id=None, is_notification=True)


def test_missing_params_are_none_and_empty_structures_are_kept() -> None:
    assert parse_entry({"jsonrpc": "2.0", "method": "m", "id": 1}).params is None
    assert parse_entry({"jsonrpc": "2.0", "method": "m", "params": [], "id": 1}).params == []
    assert parse_entry({"jsonrpc": "2.0", "method": "m", "params": {}, "id": 1}).params == {}


def test_extra_members_are_ignored() -> None:
    entry = parse_entry({"jsonrpc": "2.0", "method": "m", "id": 1, "extra": [1, 2]})
    assert entry == Request(method="m", params=None, id=1)


def test_single_request_is_not_a_batch_and_a_batch_of_one_is() -> None:
    single = parse_frame('{"jsonrpc":"2.0","method":"m","id":1}', max_batch=20)
    batch = parse_frame('[{"jsonrpc":"2.0","method":"m","id":1}]', max_batch=20)
    assert isinstance(single, Frame) and not single.is_batch and len(single.entries) == 1
    assert batch.is_batch and batch.entries == single.entries


def test_nested_batches_are_invalid_entries() -> None:
    frame = parse_frame(
        '[[{"jsonrpc":"2.0","method":"m","id":1}], {"jsonrpc":"2.0","method":"m","id":2}]', max_batch=20
    )
    assert isinstance(frame.entries[0], InvalidEntry) and isinstance(frame.entries[1], Request)


# --- batch size ----------------------------------------------------------------------------------------


def _batch(n: int) -> str:
    return json.dumps([{"jsonrpc": "2.0", "method": "m", "id": i} for i in range(n)])


def test_batch_up_to_the_cap_is_parsed_in_order() -> None:
    frame = parse_frame(_batch(3), max_batch=3)
    assert [entry.id for entry in frame.entries] == [0, 1, 2]


@pytest.mark.parametrize("entries", ["[1,2,3,4]", _batch(4), _batch(50)])
def test_batch_over_the_cap_is_one_invalid_request(entries: str) -> None:
    with pytest.raises(RpcError) as raised:
        parse_frame(entries, max_batch=3)
    assert raised.value.code == INVALID_REQUEST
    assert raised.value.data == {"reason": "batch larger than 3 requests"}


def test_empty_batch_reason() -> None:
    with pytest.raises(RpcError) as raised:
        parse_frame(" [ ] ", max_batch=3)
    assert raised.value.data == {"reason": "empty batch"}


# --- what orjson refuses: it must become -32700 -------------------------------------------------


def _parse_error(text: str | bytes) -> RpcError:
    with pytest.raises(RpcError) as raised:
        parse_frame(text, max_batch=20)
    assert raised.value.code == PARSE_ERROR
    return raised.value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "{",
        "NaN",
        "Infinity",
        '{"jsonrpc": "2.0", "method": "m", "id": NaN}',
        '{"jsonrpc": "2.0", "method": "m", "id": -Infinity}',
        '{"jsonrpc": "2.0", "method": "m", "id": 1e400}',  # overflows a double
        '{"jsonrpc": "2.0", "method": "m", "id": 1' + "0" * 400 + "}",  # integer beyond a double
        "{'jsonrpc': '2.0'}",
        '{"jsonrpc": "2.0",}',
        '{"jsonrpc": "2.0", "method": "m", "id": 1} trailing',
        '{"jsonrpc": "2.0", "method": "m", "id": 1}{"jsonrpc": "2.0", "method": "m", "id": 2}',
        "// comment\n{}",
    ],
)
def test_not_json_is_a_parse_error(text: str) -> None:
    _parse_error(text)


def test_very_deep_nesting_is_a_parse_error_not_a_crash() -> None:
    depth = 100_000
    _parse_error("[" * depth + "]" * depth)
    _parse_error('{"a":' * depth + "1" + "}" * depth)
    params = "[" * depth + "]" * depth
    _parse_error('{"jsonrpc": "2.0", "method": "m", "params": ' + params + ', "id": 1}')


def test_moderate_nesting_still_parses() -> None:
    params = "[" * 500 + "]" * 500
    (entry,) = parse_frame(
        '{"jsonrpc": "2.0", "method": "m", "params": ' + params + ', "id": 1}', max_batch=20
    ).entries
    assert isinstance(entry, Request)


@pytest.mark.parametrize("value", [2**64, 2**64 + 1, -(2**63) - 1, 10**30, -(10**30)])
def test_integers_beyond_64_bits_never_crash(value: int) -> None:
    for text in (
        f'{{"jsonrpc": "2.0", "method": "m", "id": {value}}}',
        f'{{"jsonrpc": "2.0", "method": "m", "params": [{value}], "id": 1}}',
        f"[{value}]",
        str(value),
    ):
        try:
            frame = parse_frame(text, max_batch=20)
        except RpcError as error:
            assert error.code == PARSE_ERROR
        else:
            for entry in frame.entries:
                response = (
                    failure(entry.id, entry.error)
                    if isinstance(entry, InvalidEntry)
                    else success(entry.id, 1)
                )
                orjson.loads(encode(response))


def test_lone_surrogates_are_a_parse_error() -> None:
    _parse_error('{"jsonrpc": "2.0", "method": "\ud800", "id": 1}')  # in the text itself
    _parse_error('{"jsonrpc": "2.0", "method": "\\ud800", "id": 1}')  # as a JSON escape
    _parse_error('{"jsonrpc": "2.0", "method": "m", "id": "\\udc00"}')


def test_escaped_surrogate_pairs_are_fine() -> None:
    (entry,) = parse_frame('{"jsonrpc": "2.0", "method": "\\ud83d\\udd11", "id": 1}', max_batch=20).entries
    assert entry.method == "\U0001f511"


@pytest.mark.parametrize(
    "data",
    [
        b'{"jsonrpc": "2.0", "method": "\xff", "id": 1}',
        b'{"jsonrpc": "2.0", "method": "\xed\xa0\x80", "id": 1}',  # a UTF-8 encoded surrogate
        b'{"jsonrpc": "2.0", "method": "\xc3", "id": 1}',  # a truncated sequence
        "{}".encode("utf-16"),
    ],
)
def test_bytes_that_are_not_utf8_are_a_parse_error(data: bytes) -> None:
    _parse_error(data)


def test_utf8_bytes_parse_like_text() -> None:
    text = '{"jsonrpc": "2.0", "method": "grüße", "params": ["日本"], "id": "ü"}'
    assert parse_frame(text.encode(), max_batch=20) == parse_frame(text, max_batch=20)


# --- responses ------------------------------------------------------------------------------------------


def test_success_shape() -> None:
    assert success(3, {"a": [1, None]}) == {"jsonrpc": "2.0", "result": {"a": [1, None]}, "id": 3}
    # A null result is still a result.
    assert success("x", None) == {"jsonrpc": "2.0", "result": None, "id": "x"}


def test_failure_shape() -> None:
    error = RpcError(METHOD_NOT_FOUND, data={"method": "nope"})
    assert failure("7", error) == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "Method not found", "data": {"method": "nope"}},
        "id": "7",
    }
    assert failure(None, RpcError(INTERNAL_ERROR)) == {
        "jsonrpc": "2.0",
        "error": {"code": -32603, "message": "Internal error"},
        "id": None,
    }


def test_encode_is_compact_utf8_json() -> None:
    text = encode(success("ü", "日本 🔑"))
    assert isinstance(text, str)
    assert text == '{"jsonrpc":"2.0","result":"日本 🔑","id":"ü"}'
    assert json.loads(text) == success("ü", "日本 🔑")


def test_encode_batch() -> None:
    responses = [success(1, True), failure(2, RpcError(INVALID_PARAMS))]
    assert json.loads(encode(responses)) == responses


def test_encode_keeps_float_ids_exact() -> None:
    for request_id in (0.1, 1e-300, 123456789.123456789, -2.5e17):
        assert orjson.loads(encode(success(request_id, 0)))["id"] == request_id


# --- RpcError ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (-32700, "Parse error"),
        (-32600, "Invalid Request"),
        (-32601, "Method not found"),
        (-32602, "Invalid params"),
        (-32603, "Internal error"),
        (-32000, "Execution error"),
        (-32001, "Authentication required"),
        (-32002, "Invalid credentials"),
        (-32003, "Forbidden"),
        (-32012, "Executor unavailable"),
        (-32029, "Rate limited"),
        (-32099, "Server error"),
    ],
)
def test_every_message_comes_from_the_table(code: int, message: str) -> None:
    assert RpcError(code).message == message
    assert str(RpcError(code)) == message
    assert RpcError(code).to_dict() == {"code": code, "message": message}


def test_protocol_codes() -> None:
    assert (
        jsonrpc.EXECUTION_ERROR,
        jsonrpc.AUTHENTICATION_REQUIRED,
        jsonrpc.INVALID_CREDENTIALS,
        jsonrpc.FORBIDDEN,
        jsonrpc.EXECUTOR_UNAVAILABLE,
        jsonrpc.RATE_LIMITED,
    ) == (-32000, -32001, -32002, -32003, -32012, -32029)


def test_a_detail_follows_the_message_and_falsy_data_are_kept() -> None:
    assert RpcError(-32602, detail="x is required").to_dict() == {
        "code": -32602,
        "message": "Invalid params: x is required",
    }
    for data in (0, "", [], {}, False):
        assert RpcError(-32000, data=data).to_dict() == {
            "code": -32000,
            "message": "Execution error",
            "data": data,
        }


def test_the_message_is_never_free_text() -> None:
    with pytest.raises(TypeError):
        RpcError(-32000, "x")  # type: ignore[misc]


def test_log_detail_is_never_sent() -> None:
    error = RpcError(-32002, log_detail="subject mismatch")
    assert error.log_detail == "subject mismatch"
    assert error.to_dict() == {"code": -32002, "message": "Invalid credentials"}
    assert "subject mismatch" not in encode(failure(1, error))


# Integers outside the 64-bit range are read as floats by orjson (PROTOCOL.md, framing), so
# they do not round-trip; the test below pins that behaviour.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    code=st.integers(-32768, -32000),
    message=st.text(max_size=30),
    data=json_values,
    detail=st.text(min_size=1, max_size=30),
)
def test_to_dict_never_carries_log_detail(code: int, message: str, data: Any, detail: str) -> None:
    error = RpcError(code, data=data, detail=message, log_detail=detail)
    table = RpcError(code).message
    expected: dict[str, Any] = {"code": code, "message": f"{table}: {message}" if message else table}
    if data is not None:
        expected["data"] = data
    assert error.to_dict() == expected
    assert failure(1, error)["error"] == expected


# --- property: parse_frame never fails in any other way --------------------------------------------------


def _check_outcome(text: str | bytes, max_batch: int = 5) -> Frame | None:
    """Frame, or RpcError with a standard code; the responses it leads to must encode."""
    try:
        frame = parse_frame(text, max_batch=max_batch)
    except RpcError as error:
        assert error.code in (PARSE_ERROR, INVALID_REQUEST)
        assert error.to_dict()["message"]
        orjson.loads(encode(failure(None, error)))
        return None
    assert isinstance(frame, Frame)
    assert frame.entries and len(frame.entries) <= max(1, max_batch)
    for entry in frame.entries:
        if isinstance(entry, InvalidEntry):
            assert entry.error.code == INVALID_REQUEST
            response = failure(entry.id, entry.error)
        else:
            assert isinstance(entry, Request)
            assert isinstance(entry.method, str)
            assert entry.params is None or isinstance(entry.params, list | dict)
            assert not (entry.is_notification and entry.id is not None)
            response = success(entry.id, None)
        assert entry.id is None or (
            isinstance(entry.id, str | int | float) and not isinstance(entry.id, bool)
        )
        orjson.loads(encode(response))
    return frame


@settings(max_examples=300)
@given(st.text())
def test_any_text(text: str) -> None:
    _check_outcome(text)


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from('\ud800\udfff{}[]",:\\')))
def test_any_text_with_surrogates(text: str) -> None:
    _check_outcome(text)


@settings(max_examples=300)
@given(st.binary())
def test_any_bytes(data: bytes) -> None:
    _check_outcome(data)


# Big integers and floats json.dumps writes (NaN, Infinity) included: orjson refuses some of them.
any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=10), children, max_size=6)
    ),
    max_leaves=12,
)
request_like = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2.0, None]) | any_json,
        "method": st.sampled_from(["whoami", "play", "rpc.discover", ""]) | any_json,
        "params": st.lists(any_json, max_size=3)
        | st.dictionaries(st.text(max_size=5), any_json, max_size=3)
        | any_json,
        "id": st.integers(-(2**63), 2**64 - 1) | st.text(max_size=10) | st.floats(allow_nan=False) | any_json,
    },
)


@settings(max_examples=300)
@given(any_json | request_like | st.lists(request_like | any_json, max_size=8))
def test_any_json_value(value: Any) -> None:
    _check_outcome(json.dumps(value))


@settings(max_examples=300)
@given(
    request_id=st.integers(-(2**63), 2**64 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-(2.0**53) + 1, max_value=2.0**53 - 1)
    | st.none(),
    method=st.text(),
    params=st.none()
    | st.lists(json_values, max_size=3)
    | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
)
def test_well_formed_requests_round_trip(request_id: Any, method: str, params: Any) -> None:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        message["params"] = params
    frame = _check_outcome(json.dumps(message))
    assert frame is not None
    (entry,) = frame.entries
    assert isinstance(entry, Request)
    assert entry.method == method and entry.params == params and not entry.is_notification
    echoed = orjson.loads(encode(success(entry.id, None)))["id"]
    assert echoed == request_id
    assert type(echoed) is type(request_id)


@pytest.mark.parametrize("value", [2**64, 2**64 + 1, -(2**63) - 1, 10**30])
def test_id_beyond_64_bits_is_refused_rather_than_rounded(value: int) -> None:
    (entry,) = parse_frame(f'{{"jsonrpc": "2.0", "method": "whoami", "id": {value}}}', max_batch=20).entries
    assert isinstance(entry, InvalidEntry) and entry.error.code == INVALID_REQUEST


def test_null_params_is_an_invalid_request() -> None:
    (entry,) = parse_frame(
        '{"jsonrpc": "2.0", "method": "whoami", "params": null, "id": 1}', max_batch=20
    ).entries
    assert isinstance(entry, InvalidEntry) and entry.error.code == INVALID_REQUEST


def test_integers_beyond_64_bits_in_params_arrive_as_floats() -> None:
    (entry,) = parse_frame(
        '{"jsonrpc": "2.0", "method": "m", "params": [18446744073709551616], "id": 1}', max_batch=2
    ).entries
    assert entry.params == [float(2**64)] and isinstance(entry.params[0], float)
