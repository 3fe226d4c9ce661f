"""Type stubs of the compiled extension `rhai._rhai` (use it through the `rhai` package)."""

from typing import Any

RHAI_VERSION: str
MAX_ARITY: int

class Engine:
    """Sandboxed Rhai engine (see `rhai.Engine` for the documented wrapper)."""

    def __new__(
        cls,
        *,
        max_operations: int = 1_000_000,
        timeout_ms: int = 1_000,
        max_call_levels: int = 64,
        max_expr_depth: int = 64,
        max_string_size: int = 262_144,
        max_array_size: int = 10_000,
        max_map_size: int = 10_000,
        max_variables: int = 256,
        max_functions: int = 64,
        max_source_size: int = 65_536,
        max_output_size: int = 65_536,
        cache_size: int = 256,
        max_value_depth: int = 64,
        max_memory_bytes: int = 268_435_456,
    ) -> Engine: ...
    def _register(self, name: str, func: Any, arities: list[int], module: str | None = None) -> None: ...
    def eval(
        self,
        script: str,
        constants: dict[str, Any] | None = None,
        *,
        json_safe: bool = False,
        timeout_ms: int | None = None,
        cancel: CancelToken | None = None,
    ) -> Any: ...
    def run(
        self,
        script: str,
        constants: dict[str, Any] | None = None,
        *,
        json_safe: bool = False,
        timeout_ms: int | None = None,
        cancel: CancelToken | None = None,
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
