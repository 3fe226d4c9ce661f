"""JSON-RPC 2.0 framing: parsing frames into requests, building responses (pure logic).

Follows https://www.jsonrpc.org/specification: single requests and batches, notifications
(no `id`, no reply), and the standard error objects. Nothing here knows about WebSockets,
circles or methods; `circles.registry` binds params and `circles.consumer` moves frames.
"""

from dataclasses import dataclass, field
from typing import Any

import orjson

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Server errors of this protocol (docs/PROTOCOL.md).
EXECUTION_ERROR = -32000
AUTHENTICATION_REQUIRED = -32001
INVALID_CREDENTIALS = -32002
FORBIDDEN = -32003
JOB_NOT_FOUND = -32004
WRONG_JOB_STATE = -32005
CHANGES_COMPACTED = -32006
EXECUTOR_UNAVAILABLE = -32012
RATE_LIMITED = -32029

# The one message of each code: every RpcError takes its `message` from here (a `detail` may
# follow it), and the OpenRPC document lists these.
MESSAGES: dict[int, str] = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    EXECUTION_ERROR: "Execution error",
    AUTHENTICATION_REQUIRED: "Authentication required",
    INVALID_CREDENTIALS: "Invalid credentials",
    FORBIDDEN: "Forbidden",
    JOB_NOT_FOUND: "Job not found",
    WRONG_JOB_STATE: "Wrong job state",
    CHANGES_COMPACTED: "Changes compacted",
    EXECUTOR_UNAVAILABLE: "Executor unavailable",
    RATE_LIMITED: "Rate limited",
}
SERVER_ERROR = "Server error"  # the spec's name for a code of the server range missing above

_ABSENT = object()


class RpcError(Exception):
    """An error to answer with: `code`, its message from `MESSAGES` and optional structured `data`.

    `detail` is appended to the message (`Invalid params: pubkey is required`); `log_detail`
    is for the server log only (why a sign-in failed, say) and never sent. Build one per
    failure: an exception raised from several places at once shares its traceback.
    """

    def __init__(self, code: int, *, data: Any = None, detail: str = "", log_detail: str = "") -> None:
        self.code = code
        message = MESSAGES.get(code, SERVER_ERROR)
        self.message = f"{message}: {detail}" if detail else message
        self.data = data
        self.log_detail = log_detail
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-RPC error object."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass(slots=True)
class Request:
    """One well-formed request object; `is_notification` when it carried no `id`."""

    method: str
    params: list[Any] | dict[str, Any] | None
    id: Any = None
    is_notification: bool = False


@dataclass(slots=True)
class InvalidEntry:
    """A frame entry that is not a valid request: it is answered with `error`, never run."""

    error: RpcError
    id: Any = None


@dataclass(slots=True)
class Frame:
    """A parsed text frame: its entries, and whether it was a batch (answers go back as an array)."""

    entries: list[Request | InvalidEntry] = field(default_factory=list)
    is_batch: bool = False


# orjson reads integers beyond 64 bits as floats; a float id this large could not be echoed exactly.
_MAX_FLOAT_ID = 2**53


def _valid_id(value: Any) -> bool:
    if isinstance(value, float):
        return abs(value) < _MAX_FLOAT_ID
    # bool is an int subclass but not a valid id.
    return value is None or (isinstance(value, str | int) and not isinstance(value, bool))


def parse_entry(obj: Any) -> Request | InvalidEntry:
    """Validate one decoded request object."""
    if not isinstance(obj, dict):
        return InvalidEntry(RpcError(INVALID_REQUEST, data={"reason": "a request must be an object"}))
    raw_id = obj.get("id", _ABSENT)
    has_id = raw_id is not _ABSENT
    if has_id and not _valid_id(raw_id):
        return InvalidEntry(
            RpcError(
                INVALID_REQUEST,
                data={"reason": "id must be a string, a number that fits in 53 bits, or null"},
            )
        )
    request_id = raw_id if has_id else None
    if obj.get("jsonrpc") != "2.0":
        return InvalidEntry(RpcError(INVALID_REQUEST, data={"reason": 'jsonrpc must be "2.0"'}), request_id)
    method = obj.get("method")
    if not isinstance(method, str):
        return InvalidEntry(RpcError(INVALID_REQUEST, data={"reason": "method must be a string"}), request_id)
    params = obj.get("params", _ABSENT)
    if params is _ABSENT:
        params = None
    elif not isinstance(params, list | dict):
        return InvalidEntry(
            RpcError(INVALID_REQUEST, data={"reason": "params must be an array or an object"}), request_id
        )
    return Request(method=method, params=params, id=request_id, is_notification=not has_id)


def parse_frame(text: str | bytes, *, max_batch: int) -> Frame:
    """Parse a text frame into requests; raises RpcError for what gets a single error reply."""
    try:
        decoded = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise RpcError(PARSE_ERROR, data={"reason": "invalid JSON"}) from exc
    if isinstance(decoded, list):
        if not decoded:
            raise RpcError(INVALID_REQUEST, data={"reason": "empty batch"})
        if len(decoded) > max_batch:
            raise RpcError(INVALID_REQUEST, data={"reason": f"batch larger than {max_batch} requests"})
        return Frame([parse_entry(item) for item in decoded], is_batch=True)
    return Frame([parse_entry(decoded)])


def success(request_id: Any, result: Any) -> dict[str, Any]:
    """A response object carrying `result`."""
    return {"jsonrpc": "2.0", "result": result, "id": request_id}


def failure(request_id: Any, error: RpcError) -> dict[str, Any]:
    """A response object carrying `error`."""
    return {"jsonrpc": "2.0", "error": error.to_dict(), "id": request_id}


def encode(message: dict[str, Any] | list[dict[str, Any]]) -> str:
    """Serialise a response (or batch of responses) to the text of one frame."""
    return orjson.dumps(message).decode()
