"""Exceptions raised by :mod:`rhai` (defined in Python, raised by the Rust extension)."""

from __future__ import annotations

from typing import Any

__all__ = ["HostError", "LimitError", "ParseError", "RhaiError", "ScriptError"]

#: Every value ``RhaiError.kind`` can take.
KINDS = (
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
)


class RhaiError(Exception):
    """Base class of every error a script run can raise.

    Attributes:
        kind: one of :data:`KINDS` (``parse``, ``runtime``, ``throw``, ``host``, ``operations``,
            ``timeout``, ``stack``, ``data_size``, ``variables``, ``functions``, ``source_size``,
            ``memory``, ``cancelled``).
        message: human-readable text, without the position.
        line: 1-based line in the script, or ``None`` when unknown.
        column: 1-based column in the script, or ``None`` when unknown.
    """

    kind: str
    message: str
    line: int | None
    column: int | None

    def __init__(
        self, kind: str, message: str, line: int | None = None, column: int | None = None, value: Any = None
    ) -> None:
        super().__init__(kind, message, line, column)
        self.kind = kind
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = f" (line {self.line}, column {self.column})" if self.line is not None else ""
        return f"[{self.kind}] {self.message}{where}"

    def to_dict(self) -> dict[str, Any]:
        """``{"kind", "message", "line", "column"}``, JSON-ready (for the server's answers)."""
        return {"kind": self.kind, "message": self.message, "line": self.line, "column": self.column}


class ParseError(RhaiError):
    """The script does not compile (kind ``parse``)."""


class ScriptError(RhaiError):
    """A runtime error (kind ``runtime``), a ``throw`` (kind ``throw``) or a host failure.

    Attributes:
        value: for kind ``throw``, the thrown value converted to Python; otherwise ``None``.
    """

    value: Any

    def __init__(
        self, kind: str, message: str, line: int | None = None, column: int | None = None, value: Any = None
    ) -> None:
        super().__init__(kind, message, line, column)
        self.value = value


class HostError(ScriptError):
    """A registered Python function raised (kind ``host``).

    ``message`` is ``str()`` of the exception (its type name when that is empty), ``line`` and
    ``column`` locate the call in the script, and ``__cause__`` is the original exception.
    A script cannot catch a host error with ``try``/``catch``: the run always fails.
    """


class LimitError(RhaiError):
    """A resource limit stopped the script.

    Kinds: ``operations``, ``timeout``, ``stack``, ``data_size``, ``variables``, ``functions``,
    ``source_size``, ``memory``, and ``cancelled`` (stopped by its :class:`CancelToken`).
    """
