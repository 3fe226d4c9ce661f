"""Typed exceptions: one class per JSON-RPC error code of the protocol, and the connection's fate.

`CirclesError` is the root. `RpcError` and its subclasses are answers of the server
(`docs/PROTOCOL.md` section 6); `ConnectionLost` and its subclasses mean the WebSocket closed
(section 8); `RequestTimeout` means no answer came in time.
"""

from typing import Any, ClassVar


class CirclesError(Exception):
    """Anything this client raises about a circle or its connection."""


class RpcError(CirclesError):
    """An error response: `code`, `message` (for people) and `data` (for programs)."""

    code: ClassVar[int | None] = None
    by_code: ClassVar[dict[int, type["RpcError"]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.code is not None:
            RpcError.by_code[cls.code] = cls

    def __init__(self, code: int, message: str, data: Any = None, *, method: str | None = None) -> None:
        self.rpc_code = code
        self.rpc_message = message
        self.message = message
        self.data = data
        self.method = method
        super().__init__(self.describe())

    @property
    def reason(self) -> str | None:
        """`data.reason` where the server gives one."""
        return self.data.get("reason") if isinstance(self.data, dict) else None

    def describe(self) -> str:
        """One line: the code, the message and what `data` adds."""
        text = f"{self.rpc_message} ({self.rpc_code})"
        if self.method:
            text = f"{self.method}: {text}"
        if isinstance(self.data, dict) and self.data:
            details = ", ".join(f"{key}={value}" for key, value in self.data.items())
            text += f": {details}"
        return text

    @classmethod
    def from_response(cls, error: dict[str, Any], *, method: str | None = None) -> "RpcError":
        """The exception for a response's `error` member, of the class registered for its code."""
        code = error.get("code")
        klass = cls.by_code.get(code, RpcError) if isinstance(code, int) else RpcError
        return klass(code, str(error.get("message", "")), error.get("data"), method=method)


class ParseError(RpcError):
    """-32700: the frame was not JSON (or was binary)."""

    code = -32700


class InvalidRequest(RpcError):
    """-32600: not a valid request object, or an empty / oversized batch."""

    code = -32600


class MethodNotFound(RpcError):
    """-32601: no method of that name."""

    code = -32601


class InvalidParams(RpcError):
    """-32602: the params do not fit the method; `field` and `reason` say how."""

    code = -32602

    @property
    def field(self) -> str | None:
        return self.data.get("field") if isinstance(self.data, dict) else None


class InternalError(RpcError):
    """-32603: the server failed unexpectedly (details are in its log only)."""

    code = -32603


class ExecutionError(RpcError):
    """-32000: the script failed; `kind`, `message` (the engine's), `line` and `column`."""

    code = -32000

    def __init__(self, code: int, message: str, data: Any = None, *, method: str | None = None) -> None:
        data = data if isinstance(data, dict) else {}
        self.kind: str | None = data.get("kind")
        self.line: int | None = data.get("line")
        self.column: int | None = data.get("column")
        super().__init__(code, message, data, method=method)
        self.message = data.get("message") or message

    def describe(self) -> str:
        where = ""
        if self.line is not None:
            where = f" at line {self.line}" + (f", column {self.column}" if self.column is not None else "")
        return f"{self.kind or 'execution'} error{where}: {self.data.get('message') or self.rpc_message}"


class AuthenticationRequired(RpcError):
    """-32001: `play` on a connection that is not signed in."""

    code = -32001


class InvalidCredentials(RpcError):
    """-32002: sign-in failed (bad or expired nonce, wrong key, bad signature)."""

    code = -32002


class Forbidden(RpcError):
    """-32003: signed in, but the role may not do this (`role`, `needs`)."""

    code = -32003

    @property
    def role(self) -> str | None:
        return self.data.get("role") if isinstance(self.data, dict) else None


class JobNotFound(RpcError):
    """-32004: no job of that id that the caller may see (another caller's job answers the same)."""

    code = -32004

    @property
    def job_id(self) -> str | None:
        return self.data.get("job_id") if isinstance(self.data, dict) else None


class WrongJobState(RpcError):
    """-32005: the job's status does not allow the call (`status`: the job's current status).

    Starting a started job, the output of an unfinished one, deleting a running one.
    """

    code = -32005

    @property
    def status(self) -> str | None:
        return self.data.get("status") if isinstance(self.data, dict) else None


class ChangesCompacted(RpcError):
    """-32006: `subscribe` to `records` with a `since` older than the changes the server keeps.

    `oldest` is the oldest change kept, `head` the circle's latest: re-read the collection
    (`db::list`, `CircleClient.list_records`) and watch again with `since=head`.
    """

    code = -32006

    @property
    def oldest(self) -> int | None:
        return self.data.get("oldest") if isinstance(self.data, dict) else None

    @property
    def head(self) -> int | None:
        return self.data.get("head") if isinstance(self.data, dict) else None


class ExecutorUnavailable(RpcError):
    """-32012: no script executor, or its queue is full or unreachable; retry later."""

    code = -32012


class RateLimited(RpcError):
    """-32029: over the request rate, too many requests in flight, too many active jobs for this
    key or too many subscriptions on the connection (`reason` says which)."""

    code = -32029


class ConnectionLost(CirclesError):
    """The WebSocket closed (or could not be opened); `close_code` and `close_reason` when known.

    A request in flight at that moment fails with this: it may or may not have run.
    """

    def __init__(self, message: str, *, close_code: int | None = None, close_reason: str = "") -> None:
        super().__init__(message)
        self.close_code = close_code
        self.close_reason = close_reason


class CircleNotFound(ConnectionLost):
    """Close 4404: no active circle has this key (or the path is not a key)."""


class TooManyRequests(ConnectionLost):
    """Close 4429: too many failed sign-ins or rate-limited requests on the connection, or too
    many connections from this client's address."""


class TooManyUnreadNotifications(ConnectionLost):
    """Close 4408: the connection left more notifications unread than the server keeps for it."""


class RequestTimeout(CirclesError, TimeoutError):
    """No answer within the request timeout (the request may still run on the server)."""


CLOSE_CODES: dict[int, type[ConnectionLost]] = {
    4404: CircleNotFound,
    4408: TooManyUnreadNotifications,
    4429: TooManyRequests,
}


def connection_error(close_code: int | None, close_reason: str, *, context: str) -> ConnectionLost:
    """The exception for a closed connection, by close code (4404, 4429 or any other)."""
    klass = CLOSE_CODES.get(close_code, ConnectionLost) if close_code is not None else ConnectionLost
    detail = f"close {close_code}" if close_code is not None else "no close frame"
    if close_reason:
        detail += f" {close_reason!r}"
    return klass(f"{context} ({detail})", close_code=close_code, close_reason=close_reason)
