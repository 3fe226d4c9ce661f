"""`executor/` sits below the WebSocket face: it may read circle data, never the RPC face or the project."""

import ast
from pathlib import Path

import pytest

EXECUTOR = Path(__file__).resolve().parents[2] / "executor"
# The RPC face and webhooks (floor 4) and the project's top (floor 5): what the executor must not
# import. (`circleproject.metrics` is still imported by the worker until the metrics move to the
# apps they measure.)
ABOVE = (
    "circles.answering",
    "circles.consumer",
    "circles.jsonrpc",
    "circles.methods",
    "circles.play",
    "circles.registry",
    "circles.session",
    "circles.shutdown",
    "webhooks",
    "circleproject.asgi",
    "circleproject.serve",
    "circleproject.urls",
)


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize(
    "path", sorted(EXECUTOR.rglob("*.py")), ids=lambda path: str(path.relative_to(EXECUTOR))
)
def test_the_executor_does_not_import_the_rpc_face(path: Path) -> None:
    above = sorted(
        name for name in imported_modules(path) if any(name == a or name.startswith(f"{a}.") for a in ABOVE)
    )
    assert above == [], f"executor/{path.relative_to(EXECUTOR)} imports {above}"
