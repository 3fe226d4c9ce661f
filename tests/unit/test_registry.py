"""Unit tests for circles.registry (params, binding, the OpenRPC document) and the real method table."""

import re
from typing import Any

import orjson
import pytest

from circles.jsonrpc import INVALID_PARAMS, RpcError
from circles.registry import Method, MethodRegistry, Param


async def _handler(session: Any, **params: Any) -> dict[str, Any]:
    return params


def invalid(call) -> RpcError:
    """The -32602 error `call()` raises."""
    with pytest.raises(RpcError) as raised:
        call()
    assert raised.value.code == INVALID_PARAMS
    return raised.value


# --- Param.check: one JSON type at a time -------------------------------------------------------

SAMPLES: dict[str, Any] = {
    "string": "text",
    "empty string": "",
    "integer": 7,
    "zero": 0,
    "negative": -3,
    "float": 1.5,
    "integral float": 2.0,
    "true": True,
    "false": False,
    "null": None,
    "object": {"a": 1},
    "empty object": {},
    "array": [1, "a"],
    "empty array": [],
}

ACCEPTS = {
    "string": {"string", "empty string"},
    "integer": {"integer", "zero", "negative"},
    "number": {"integer", "zero", "negative", "float", "integral float"},
    "boolean": {"true", "false"},
    "object": {"object", "empty object"},
    "array": {"array", "empty array"},
}


@pytest.mark.parametrize("json_type", sorted(ACCEPTS))
@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_check_accepts_exactly_its_json_type(json_type: str, sample: str) -> None:
    param = Param("p", json_type)
    value = SAMPLES[sample]
    if sample in ACCEPTS[json_type]:
        param.check(value)
    else:
        error = invalid(lambda: param.check(value))
        assert error.data == {"field": "p", "reason": f"must be of type {json_type}"}
        assert error.message == f"Invalid params: p must be of type {json_type}"


def test_bool_is_not_an_integer_or_a_number_and_int_is_a_number() -> None:
    for json_type in ("integer", "number"):
        for value in (True, False):
            invalid(lambda json_type=json_type, value=value: Param("n", json_type).check(value))
    Param("n", "number").check(10**20)
    Param("n", "integer").check(-(2**63))


def test_max_length() -> None:
    param = Param("s", "string", max_length=3)
    param.check("")
    param.check("abc")
    param.check("ééé")  # characters, not bytes
    error = invalid(lambda: param.check("abcd"))
    assert error.data == {"field": "s", "reason": "longer than 3"}
    assert error.message == "Invalid params: s longer than 3"


def test_max_length_applies_to_arrays() -> None:
    param = Param("a", "array", max_length=2)
    param.check([1, 2])
    assert invalid(lambda: param.check([1, 2, 3])).data == {"field": "a", "reason": "longer than 2"}


def test_minimum_and_maximum_are_inclusive() -> None:
    param = Param("n", "integer", minimum=1, maximum=10)
    for value in (1, 5, 10):
        param.check(value)
    assert invalid(lambda: param.check(0)).data == {"field": "n", "reason": "less than 1"}
    assert invalid(lambda: param.check(11)).data == {"field": "n", "reason": "greater than 10"}
    assert invalid(lambda: param.check(-(10**30))).data["reason"] == "less than 1"


def test_number_bounds_compare_floats() -> None:
    param = Param("x", "number", minimum=0, maximum=1)
    param.check(0.5)
    assert invalid(lambda: param.check(-0.001)).data["reason"] == "less than 0"
    assert invalid(lambda: param.check(1.001)).data["reason"] == "greater than 1"


def test_type_is_checked_before_limits() -> None:
    assert (
        invalid(lambda: Param("n", "integer", minimum=1).check("0")).data["reason"]
        == "must be of type integer"
    )
    assert invalid(lambda: Param("s", "string", max_length=1).check(["a", "b"])).data["reason"] == (
        "must be of type string"
    )


def test_schema() -> None:
    assert Param("s", "string").schema() == {"type": "string"}
    assert Param("s", "string", max_length=200).schema() == {"type": "string", "maxLength": 200}
    assert Param("n", "integer", minimum=0, maximum=0).schema() == {
        "type": "integer",
        "minimum": 0,
        "maximum": 0,
    }


# --- Method.bind ----------------------------------------------------------------------------------------

METHOD = Method(
    "m",
    _handler,
    "a test method",
    params=(
        Param("name", "string", max_length=5),
        Param("count", "integer", required=False, minimum=1),
        Param("flag", "boolean", required=False),
    ),
)


@pytest.mark.parametrize(
    ("params", "bound"),
    [
        ({"name": "a"}, {"name": "a"}),
        ({"name": "a", "count": 2}, {"name": "a", "count": 2}),
        ({"flag": True, "count": 2, "name": "a"}, {"name": "a", "count": 2, "flag": True}),
        (["a"], {"name": "a"}),
        (["a", 2], {"name": "a", "count": 2}),
        (["a", 2, False], {"name": "a", "count": 2, "flag": False}),
    ],
)
def test_bind_named_and_positional(params: Any, bound: dict[str, Any]) -> None:
    assert METHOD.bind(params) == bound


def test_bind_without_params() -> None:
    method = Method("none", _handler, "no params")
    assert method.bind(None) == {}
    assert method.bind({}) == {}
    assert method.bind([]) == {}


@pytest.mark.parametrize("params", [None, {}, [], {"count": 2}])
def test_missing_required_param_is_named(params: Any) -> None:
    error = invalid(lambda: METHOD.bind(params))
    assert error.data == {"field": "name", "reason": "is required"}
    assert error.message == "Invalid params: name is required"


def test_unknown_field_is_named() -> None:
    error = invalid(lambda: METHOD.bind({"name": "a", "surprise": 1}))
    assert error.data == {"field": "surprise", "reason": "is not a parameter of this method"}
    assert error.message == "Invalid params: surprise is not a parameter of this method"


def test_of_several_unknown_fields_the_first_in_sorted_order_is_named() -> None:
    assert invalid(lambda: METHOD.bind({"zz": 1, "aa": 2, "name": "x"})).data["field"] == "aa"


def test_unknown_field_is_reported_before_a_missing_one() -> None:
    assert invalid(lambda: METHOD.bind({"surprise": 1})).data["field"] == "surprise"


def test_too_many_positional_params() -> None:
    error = invalid(lambda: METHOD.bind(["a", 2, True, "extra"]))
    assert error.data == {"reason": "at most 3 positional params"}
    assert error.message == "Invalid params: at most 3 positional params"
    error = invalid(lambda: Method("none", _handler, "no params").bind([1]))
    assert error.data == {"reason": "at most 0 positional params"}


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"name": 1}, "name", "must be of type string"),
        ([None], "name", "must be of type string"),
        ({"name": "toolong"}, "name", "longer than 5"),
        (["a", 0], "count", "less than 1"),
        (["a", True], "count", "must be of type integer"),
        ({"name": "a", "count": None}, "count", "must be of type integer"),
        (["a", 1, "yes"], "flag", "must be of type boolean"),
    ],
)
def test_bad_values_name_the_field(params: Any, field: str, reason: str) -> None:
    assert invalid(lambda: METHOD.bind(params)).data == {"field": field, "reason": reason}


def test_bind_does_not_change_its_input() -> None:
    named = {"name": "a", "count": 3}
    positional = ["a", 3]
    METHOD.bind(named)
    METHOD.bind(positional)
    assert named == {"name": "a", "count": 3} and positional == ["a", 3]


# --- MethodRegistry ---------------------------------------------------------------------------------------


def test_add_get_and_iterate_in_registration_order() -> None:
    registry = MethodRegistry()
    first = Method("b.first", _handler, "first")
    second = Method("a.second", _handler, "second")
    registry.add(first)
    registry.add(second)
    assert registry.get("b.first") is first and registry.get("a.second") is second
    assert registry.get("missing") is None
    assert list(registry) == [first, second]


def test_duplicate_registration_is_refused() -> None:
    registry = MethodRegistry()
    registry.add(Method("same", _handler, "one"))
    with pytest.raises(ValueError, match="registered twice"):
        registry.add(Method("same", _handler, "another"))
    assert registry.get("same").summary == "one"


SEMVER = re.compile(r"\d+\.\d+\.\d+")


def assert_openrpc_1_2(document: dict[str, Any]) -> None:
    """The structure OpenRPC 1.2 requires (https://spec.open-rpc.org), checked by hand."""
    assert set(document) >= {"openrpc", "info", "methods"}
    assert SEMVER.fullmatch(document["openrpc"]) and document["openrpc"].startswith("1.2.")
    info = document["info"]
    assert isinstance(info["title"], str) and info["title"]
    assert isinstance(info["version"], str) and info["version"]
    methods = document["methods"]
    assert isinstance(methods, list)
    names = [m["name"] for m in methods]
    assert len(names) == len(set(names)), "method names must be unique"
    for method in methods:
        assert isinstance(method["name"], str) and method["name"]
        assert isinstance(method.get("summary", ""), str)
        assert method.get("paramStructure", "either") in ("by-name", "by-position", "either")
        params = method["params"]
        assert isinstance(params, list)
        param_names = [p["name"] for p in params]
        assert len(param_names) == len(set(param_names)), "param names must be unique"
        required = [p.get("required", False) for p in params]
        assert required == sorted(required, reverse=True), "required params come before optional ones"
        for descriptor in [*params, method["result"]]:
            assert isinstance(descriptor["name"], str) and descriptor["name"]
            assert isinstance(descriptor["schema"], dict)
            assert isinstance(descriptor.get("required", False), bool)
            assert isinstance(descriptor.get("description", ""), str)
        for error in method.get("errors", []):
            assert isinstance(error["code"], int) and not isinstance(error["code"], bool)
            assert isinstance(error["message"], str) and error["message"]
    # The document is plain JSON.
    assert orjson.loads(orjson.dumps(document)) == document


def test_openrpc_document_shape() -> None:
    registry = MethodRegistry()
    registry.add(
        Method(
            "greet",
            _handler,
            "Say hello.",
            params=(
                Param("name", "string", "who", max_length=10),
                Param("times", "integer", "how often", required=False, minimum=1, maximum=3),
            ),
            result={"type": "string"},
            errors=(-32602, -32001),
        )
    )
    registry.add(Method("ping", _handler, "Pong.", result={"type": "boolean"}))
    document = registry.openrpc(title="T", version="9.9.9")
    assert_openrpc_1_2(document)
    assert document == {
        "openrpc": "1.2.6",
        "info": {"title": "T", "version": "9.9.9"},
        "methods": [
            {
                "name": "greet",
                "summary": "Say hello.",
                "paramStructure": "either",
                "params": [
                    {
                        "name": "name",
                        "description": "who",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 10},
                    },
                    {
                        "name": "times",
                        "description": "how often",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 3},
                    },
                ],
                "result": {"name": "greet_result", "schema": {"type": "string"}},
                "errors": [
                    {"code": -32602, "message": "Invalid params"},
                    {"code": -32001, "message": "Authentication required"},
                ],
            },
            {
                "name": "ping",
                "summary": "Pong.",
                "paramStructure": "either",
                "params": [],
                "result": {"name": "ping_result", "schema": {"type": "boolean"}},
                "errors": [],
            },
        ],
    }


def test_empty_registry_document() -> None:
    document = MethodRegistry().openrpc(title="T", version="1.0.0")
    assert_openrpc_1_2(document)
    assert document["methods"] == []


# --- the real method table ------------------------------------------------------------------------------


def test_real_registry_document() -> None:
    import circles.job_methods
    import circles.record_methods
    import circles.subscription_methods  # noqa: F401  (their methods join the registry)
    from circles.jsonrpc import MESSAGES
    from circles.methods import PROTOCOL_VERSION, openrpc_document, registry

    document = openrpc_document()
    assert_openrpc_1_2(document)
    assert document["info"]["version"] == PROTOCOL_VERSION == "0.2.0"
    params = {
        m["name"]: [(p["name"], p["required"], p["schema"]["type"]) for p in m["params"]]
        for m in document["methods"]
    }
    assert list(params)[:6] == ["fetch_nonce", "authenticate", "whoami", "logout", "play", "rpc.discover"]
    jobs = ["create_job", "start_job", "run_job", "get_job_status", "get_job_output", "get_job_logs"]
    jobs += ["get_job", "list_jobs", "stop_job", "delete_job", "clear_all_jobs", "records_head"]
    jobs += ["subscribe", "unsubscribe"]
    # circles.job_methods, circles.subscription_methods (issue 12), circles.record_methods (issue 13)
    assert list(params)[6:] == jobs
    every_method = list(params)
    params = {name: value for name, value in params.items() if name not in jobs}
    assert params == {
        "fetch_nonce": [("pubkey", True, "string")],
        "authenticate": [
            ("pubkey", True, "string"),
            ("signature", True, "string"),
            ("nonce", False, "string"),
        ],
        "whoami": [],
        "logout": [],
        "play": [("script", True, "string"), ("timeout_ms", False, "integer")],
        "rpc.discover": [],
    }
    assert [m.name for m in registry] == every_method
    for method in document["methods"]:
        for error in method["errors"]:
            assert error["message"] == MESSAGES[error["code"]]
    by_name = {m["name"]: m for m in document["methods"]}
    assert [e["code"] for e in by_name["authenticate"]["errors"]] == [-32602, -32002, -32029]
    assert {-32000, -32001, -32003, -32012} <= {e["code"] for e in by_name["play"]["errors"]}
    assert set(by_name["play"]["result"]["schema"]["properties"]) == {
        "output",
        "value",
        "logs",
        "run_id",
        "elapsed_ms",
    }
    assert set(by_name["whoami"]["result"]["schema"]["properties"]) == {
        "circle",
        "authenticated",
        "pubkey",
        "role",
    }
    assert by_name["play"]["params"][1]["schema"] == {"type": "integer", "minimum": 1}


def test_real_registry_binds_the_documented_forms() -> None:
    import circles.job_methods
    import circles.record_methods
    import circles.subscription_methods  # noqa: F401  (their methods join the registry)
    from circles.methods import registry

    key = "02" + "11" * 32
    assert registry.get("fetch_nonce").bind([key]) == registry.get("fetch_nonce").bind({"pubkey": key})
    assert registry.get("authenticate").bind([key, "00"]) == {"pubkey": key, "signature": "00"}
    assert registry.get("play").bind(["1", 50]) == {"script": "1", "timeout_ms": 50}
    assert registry.get("whoami").bind(None) == {}
    assert invalid(lambda: registry.get("play").bind({"script": "1", "timeout_ms": 0})).data == {
        "field": "timeout_ms",
        "reason": "less than 1",
    }
    assert invalid(lambda: registry.get("fetch_nonce").bind({"pubkey": "0" * 201})).data == {
        "field": "pubkey",
        "reason": "longer than 200",
    }
    inline = {m.name for m in registry if m.inline}
    assert inline == {"fetch_nonce", "whoami", "logout", "rpc.discover", "subscribe", "unsubscribe"}
