"""Sandboxed Rhai scripting for Python: a PyO3 binding of the ``rhai`` crate (1.27).

Quick use::

    import rhai

    engine = rhai.Engine(timeout_ms=500)
    engine.register_fn("get", lambda key: store[key], module="db")
    engine.eval("db::get(CALLER_ID)", {"CALLER_ID": 7})

    result = engine.run('print("hi"); 6 * 7')
    result.value, result.output, result.logs, result.operations, result.elapsed_ms

See docs/SCRIPTING.md for the limits and their defaults, the value conversions, the error
kinds and the sandbox.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any

from ._errors import KINDS, HostError, LimitError, ParseError, RhaiError, ScriptError
from ._rhai import MAX_ARITY, RHAI_VERSION, CancelToken, LogTap, RunResult
from ._rhai import Engine as _NativeEngine

__all__ = [
    "KINDS",
    "MAX_ARITY",
    "RHAI_VERSION",
    "CancelToken",
    "Engine",
    "HostError",
    "LimitError",
    "LogTap",
    "ParseError",
    "RhaiError",
    "RunResult",
    "ScriptError",
]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _arities(func: Callable[..., Any]) -> list[int]:
    """The argument counts a callable accepts: required..required+optional, and with
    ``*args`` up to :data:`MAX_ARITY`. Keyword-only parameters need defaults."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the signature of {func!r}; pass arity= explicitly") from exc
    required = optional = 0
    varargs = False
    for p in sig.parameters.values():
        if p.kind in _POSITIONAL:
            if p.default is p.empty:
                required += 1
            else:
                optional += 1
        elif p.kind is inspect.Parameter.VAR_POSITIONAL:
            varargs = True
        elif p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is p.empty:
            raise TypeError(f"keyword-only parameter {p.name!r} has no default: Rhai cannot pass it")
    highest = MAX_ARITY if varargs else required + optional
    if required > MAX_ARITY:
        raise ValueError(f"{func!r} needs {required} arguments, more than MAX_ARITY ({MAX_ARITY})")
    return list(range(required, min(highest, MAX_ARITY) + 1))


class Engine(_NativeEngine):
    """A sandboxed Rhai engine. Thread-safe: one engine can run scripts from many threads at once.

    Every limit is keyword-only, always set explicitly (identical in debug and release builds),
    and must be at least 1 (there is no "unlimited"). The defaults, meant for untrusted scripts,
    are ``rhai.Engine().limits`` (docs/SCRIPTING.md lists them, with what each bounds):

    ==================  ================================================================
    max_operations      Rhai operations per run (kind ``operations``)
    timeout_ms          wall-clock time per run (kind ``timeout``)
    max_call_levels     nested function calls (kind ``stack``)
    max_expr_depth      nested expressions, also in fn bodies (``stack``), at most 512
    max_string_size     bytes per string (kind ``data_size``)
    max_array_size      elements per array, nested ones counted (``data_size``)
    max_map_size        properties per object map (``data_size``)
    max_variables       variables in scope at once (kind ``variables``)
    max_functions       functions a script defines (kind ``functions``)
    max_source_size     bytes of script source (kind ``source_size``)
    max_output_size     bytes of print/debug output kept per run
    max_memory_bytes    heap the run's values hold at once (``memory``), at most 16 GiB
    cache_size          compiled scripts kept (LRU by source; 0 = no cache)
    max_value_depth     nesting of values converted in and out (1..256)
    ==================  ================================================================

    A run never crashes the process, whatever it builds: what it leaves behind is released
    without recursion, and it runs on a stack of its own sized from ``max_memory_bytes``
    (address space, backed only where used), so values dropped while it runs fit too.
    """

    __slots__ = ()

    def register_fn(
        self,
        name: str,
        func: Callable[..., Any],
        *,
        module: str | None = None,
        arity: int | Iterable[int] | None = None,
    ) -> None:
        """Make ``func`` callable from scripts as ``name(...)``, or ``module::name(...)``.

        The arities come from ``inspect.signature(func)``: a function with defaults is registered
        once per accepted argument count, one with ``*args`` for every count up to
        :data:`MAX_ARITY`; ``arity`` overrides this (needed for callables without a signature).
        Registering the same name and arity again replaces the earlier function.

        Arguments arrive as Python values and the return value goes back as a Rhai value
        (see the conversion table in docs/SCRIPTING.md). If ``func`` raises, the run fails with
        :class:`HostError` (kind ``host``, the exception's message, the line/column of the call,
        the exception as ``__cause__``); scripts cannot catch it with ``try``/``catch``.
        ``func`` runs with the GIL held, on the thread running the script.
        """
        if not isinstance(name, str) or not _IDENT.match(name):
            raise ValueError(f"invalid Rhai function name: {name!r}")
        if module is not None and (not isinstance(module, str) or not _IDENT.match(module)):
            raise ValueError(f"invalid Rhai module name: {module!r}")
        if not callable(func):
            raise TypeError("func must be callable")
        if arity is None:
            arities = _arities(func)
        elif isinstance(arity, int):
            arities = [arity]
        else:
            arities = sorted(set(arity))
        if any(not 0 <= a <= MAX_ARITY for a in arities):
            raise ValueError(f"arities must be between 0 and {MAX_ARITY}, got {arities}")
        self._register(name, func, arities, module)

    def eval(
        self,
        script: str,
        constants: dict[str, Any] | None = None,
        *,
        timeout_ms: int | None = None,
        cancel: CancelToken | None = None,
        tap: LogTap | None = None,
    ) -> Any:
        """Run ``script`` and return its value as a Python object.

        ``constants`` (str -> value) are visible read-only by name, also inside the script's
        own ``fn`` definitions (a script's ``let`` of the same name shadows them). NaN, infinities
        and blobs come back as ``float`` and ``bytes``: the value's JSON form is the caller's
        concern. ``timeout_ms`` shortens the engine's timeout for this run only (a longer one is
        ignored: the engine's is the ceiling). ``cancel`` stops the run (kind ``cancelled``, a
        :class:`LimitError`) once another thread calls its ``cancel()``. ``tap`` (a
        :class:`LogTap`) receives the lines the script prints as it prints them, so another
        thread can ``take()`` them while it runs (the same lines ``RunResult.logs`` keeps). Raises a
        :class:`RhaiError` subclass when the script fails. The GIL is released while the script
        runs.
        """
        return super().eval(script, constants, timeout_ms=timeout_ms, cancel=cancel, tap=tap)

    def run(
        self,
        script: str,
        constants: dict[str, Any] | None = None,
        *,
        timeout_ms: int | None = None,
        cancel: CancelToken | None = None,
        tap: LogTap | None = None,
    ) -> RunResult:
        """Like :meth:`eval`, but return a :class:`RunResult`: ``value``, ``output`` (the value
        as Rhai prints it), ``logs`` (print/debug lines, capped at ``max_output_size`` bytes,
        then ``truncated`` is true and the last line is a marker), ``operations``,
        ``peak_memory_bytes`` and ``elapsed_ms``."""
        return super().run(script, constants, timeout_ms=timeout_ms, cancel=cancel, tap=tap)
