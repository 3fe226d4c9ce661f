"""Type stubs of the compiled extension `rhai._rhai` (use it through the `rhai` package)."""

from typing import Any

RHAI_VERSION: str
MAX_ARITY: int

class Engine:
    """Sandboxed Rhai engine (see `rhai.Engine` for the documented wrapper)."""

    # Defaults: `rhai.Engine().limits` (one source: rhai_py/src/limits.rs); docs/SCRIPTING.md lists them.
    def __new__(
        cls,
        *,
        max_operations: int = ...,
        timeout_ms: int = ...,
        max_call_levels: int = ...,
        max_expr_depth: int = ...,
        max_string_size: int = ...,
        max_array_size: int = ...,
        max_map_size: int = ...,
        max_variables: int = ...,
        max_functions: int = ...,
        max_source_size: int = ...,
        max_output_size: int = ...,
        max_memory_bytes: int = ...,
        cache_size: int = ...,
        max_value_depth: int = ...,
    ) -> Engine: ...
    def _register(self, name: str, func: Any, arities: list[int], module: str | None = None) -> None: ...
    def eval(
        self,
        script: str,
        constants: dict[str, Any] | None = None,
        *,
        timeout_ms: int | None = None,
        cancel: CancelToken | None = None,
        tap: LogTap | None = None,
    ) -> Any: ...
    def run(
        self,
        script: str,
        constants: dict[str, Any] | None = None,
        *,
        timeout_ms: int | None = None,
        cancel: CancelToken | None = None,
        tap: LogTap | None = None,
    ) -> RunResult: ...
    @staticmethod
    def left_behind_bytes() -> int: ...
    def cache_info(self) -> dict[str, int]: ...
    def clear_cache(self) -> None: ...
    @property
    def limits(self) -> dict[str, int]: ...

class RunResult:
    """Outcome of `Engine.run`."""

    @property
    def value(self) -> Any: ...
    @property
    def output(self) -> str: ...
    @property
    def logs(self) -> list[str]: ...
    @property
    def truncated(self) -> bool: ...
    @property
    def operations(self) -> int: ...
    @property
    def peak_memory_bytes(self) -> int: ...
    @property
    def elapsed_ms(self) -> float: ...

class CancelToken:
    """Stops the runs given it (kind `cancelled`) once `cancel()` is called, from any thread."""

    def __new__(cls) -> CancelToken: ...
    def cancel(self) -> None: ...
    @property
    def cancelled(self) -> bool: ...

class LogTap:
    """Receives the lines printed by the runs given it; `take()` them from any thread while they run."""

    def __new__(cls) -> LogTap: ...
    def take(self) -> list[str]: ...
    @property
    def pending(self) -> int: ...
