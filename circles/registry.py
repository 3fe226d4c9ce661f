"""The method registry: each RPC method with its parameter schema (pure logic).

Methods declare their params once; the same declaration binds incoming params (named or
positional, with -32602 naming the offending field) and generates the OpenRPC document
that `rpc.discover` returns.
"""

from collections.abc import Awaitable, Callable, Iterator, Sized
from dataclasses import dataclass, field
from typing import Any

from circles.jsonrpc import INVALID_PARAMS, MESSAGES, RpcError

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its name, JSON type and limits, as OpenRPC shows it."""

    name: str
    type: str
    description: str = ""
    required: bool = True
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of this param."""
        schema: dict[str, Any] = {"type": self.type}
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema

    def check(self, value: Any) -> None:
        """Raise -32602 naming this param when `value` does not fit."""
        expected = _JSON_TYPES[self.type]
        if (isinstance(value, bool) and bool not in expected) or not isinstance(value, expected):
            raise _invalid(self.name, f"must be of type {self.type}")
        # The limits are declared only on the types they apply to (strings, numbers).
        if self.max_length is not None and isinstance(value, Sized) and len(value) > self.max_length:
            raise _invalid(self.name, f"longer than {self.max_length}")
        if self.minimum is not None and isinstance(value, int | float) and value < self.minimum:
            raise _invalid(self.name, f"less than {self.minimum}")
        if self.maximum is not None and isinstance(value, int | float) and value > self.maximum:
            raise _invalid(self.name, f"greater than {self.maximum}")


def _invalid(field_name: str | None, reason: str) -> RpcError:
    data: dict[str, Any] = {"reason": reason}
    if field_name is not None:
        data["field"] = field_name
    return RpcError(INVALID_PARAMS, data=data, detail=f"{field_name} {reason}" if field_name else reason)


Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Method:
    """An RPC method: name, params, the handler `handler(session, **params)`, and what OpenRPC says of it.

    `inline` methods are cheap and never wait on I/O, so the consumer answers them in
    place instead of spawning a task for each. A method that `takes_request_id` is also
    called with `request_id`: the request's JSON-RPC id as JSON text (`circles.answering`).
    """

    name: str
    handler: Handler
    summary: str
    params: tuple[Param, ...] = ()
    result: dict[str, Any] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    inline: bool = False
    takes_request_id: bool = False

    def bind(self, params: list[Any] | dict[str, Any] | None) -> dict[str, Any]:
        """Turn named or positional params into keyword arguments, checking each."""
        if params is None:
            params = {}
        if isinstance(params, list):
            if len(params) > len(self.params):
                raise _invalid(None, f"at most {len(self.params)} positional params")
            params = {p.name: v for p, v in zip(self.params, params, strict=False)}
        known = {p.name for p in self.params}
        unknown = sorted(set(params) - known)
        if unknown:
            raise _invalid(unknown[0], "is not a parameter of this method")
        bound: dict[str, Any] = {}
        for param in self.params:
            if param.name in params:
                param.check(params[param.name])
                bound[param.name] = params[param.name]
            elif param.required:
                raise _invalid(param.name, "is required")
        return bound


class MethodRegistry:
    """The methods a circle endpoint answers, by name."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}
        self._notifications: dict[str, dict[str, Any]] = {}

    def add_notification(self, name: str, summary: str, params: dict[str, Any]) -> None:
        """Register a notification the server sends (listed as `x-notifications` in OpenRPC)."""
        self._notifications[name] = {"name": name, "summary": summary, "params": params}

    def add(self, method: Method) -> None:
        """Register `method`; names are unique."""
        if method.name in self._methods:
            raise ValueError(f"method {method.name!r} registered twice")
        self._methods[method.name] = method

    def get(self, name: str) -> Method | None:
        """The method called `name`, or None."""
        return self._methods.get(name)

    def __iter__(self) -> Iterator[Method]:
        return iter(self._methods.values())

    def openrpc(self, *, title: str, version: str) -> dict[str, Any]:
        """The OpenRPC 1.2 document of the registered methods (error messages from `jsonrpc.MESSAGES`)."""
        document = {
            "openrpc": "1.2.6",
            "info": {"title": title, "version": version},
            "methods": [
                {
                    "name": m.name,
                    "summary": m.summary,
                    "paramStructure": "either",
                    "params": [
                        {
                            "name": p.name,
                            "description": p.description,
                            "required": p.required,
                            "schema": p.schema(),
                        }
                        for p in m.params
                    ],
                    "result": {"name": f"{m.name}_result", "schema": m.result},
                    "errors": [{"code": code, "message": MESSAGES[code]} for code in m.errors],
                }
                for m in self._methods.values()
            ],
        }
        if self._notifications:  # what the server sends unasked (OpenRPC 1.2 has no field for it)
            document["x-notifications"] = list(self._notifications.values())
        return document
