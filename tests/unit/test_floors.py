"""The code's floors, each importing only from below (README, "Where things live").

1. `auth_secp`, `rhai` (pure: no Django, no project app);
2. circle data: the modules of `circles` named in `CIRCLE_DATA`;
3. `executor`;
4. the WebSocket face (every other module of `circles`) and `webhooks`, independent of each other;
5. `circleproject`, which may import every app.

The import graph is grimp's (import-linter's), which sees imports inside functions too, so a
function-local import cannot hide a cycle. A new module of `circles` is on the face's floor unless
it is added to `CIRCLE_DATA`.
"""

from functools import cache

import grimp
import pytest

PACKAGES = ("auth_secp", "circles", "executor", "webhooks", "circleproject")
CIRCLE_DATA = frozenset(
    {
        "circles",
        "circles.apps",
        "circles.changes",
        "circles.circle_file",
        "circles.client_address",
        "circles.lookups",
        "circles.membership",
        "circles.membership_rules",
        "circles.models",
        "circles.record_rows",
        "circles.roles",
        "circles.subjects",
    }
)
PURE, DATA, EXECUTOR, FACE, WEBHOOKS, PROJECT = "pure", "data", "executor", "face", "webhooks", "project"
FLOOR_NUMBER = {PURE: 1, DATA: 2, EXECUTOR: 3, FACE: 4, WEBHOOKS: 4, PROJECT: 5}
# Third-party packages the pure floor must not reach.
FRAMEWORKS = ("django", "channels", "rest_framework")


def floor(module: str) -> str:
    """The floor of one of the project's modules."""
    top = module.split(".")[0]
    if top == "auth_secp":
        return PURE
    if top == "circles":
        is_data = module in CIRCLE_DATA or module.startswith("circles.migrations")
        return DATA if is_data else FACE
    return {"executor": EXECUTOR, "webhooks": WEBHOOKS, "circleproject": PROJECT}[top]


@cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, include_external_packages=True)


def imports(module: str, in_graph: grimp.ImportGraph | None = None) -> set[str]:
    """What `module` imports directly (the project's modules, and third-party packages by top name)."""
    return (in_graph or graph()).find_modules_directly_imported_by(module)


def project_modules() -> list[str]:
    return sorted(module for module in graph().modules if module.split(".")[0] in PACKAGES)


def upward_imports(module: str, in_graph: grimp.ImportGraph | None = None) -> list[str]:
    """The project's modules `module` imports from a floor above its own, or beside it across 4."""
    here = floor(module)
    found = []
    for target in imports(module, in_graph):
        if target.split(".")[0] not in PACKAGES:
            continue
        there = floor(target)
        if FLOOR_NUMBER[there] > FLOOR_NUMBER[here] or (
            FLOOR_NUMBER[there] == FLOOR_NUMBER[here] == 4 and there != here
        ):
            found.append(target)
    return sorted(found)


@pytest.mark.parametrize("module", project_modules())
def test_each_module_imports_only_from_below(module: str) -> None:
    assert upward_imports(module) == [], f"{module} (floor {floor(module)}) imports from above"


@pytest.mark.parametrize("module", [m for m in project_modules() if floor(m) == PURE])
def test_the_pure_floor_imports_no_framework(module: str) -> None:
    frameworks = sorted(target for target in imports(module) if target.split(".")[0] in FRAMEWORKS)
    assert frameworks == [], f"{module} imports {frameworks}"


def test_the_data_floor_names_only_modules_that_exist() -> None:
    assert set(graph().modules) >= CIRCLE_DATA


def test_an_upward_import_is_found() -> None:
    """The check can fail: each kind of wrong import, in a graph of its own, is caught."""
    wrong = [
        ("executor.worker", "circleproject.metrics"),  # an app climbing to the project
        ("executor.worker", "circles.consumer"),  # the executor reaching the face
        ("circles.models", "executor.jobs"),  # circle data reaching the executor
        ("webhooks.views", "circles.consumer"),  # floor 4 sideways
        ("circles.consumer", "webhooks.views"),
    ]
    right = [
        ("circles.consumer", "executor.jobs"),
        ("executor.dsl", "circles.models"),
        ("circleproject.urls", "webhooks.views"),
    ]
    test_graph = grimp.ImportGraph()
    for importer, imported in wrong + right:
        test_graph.add_import(importer=importer, imported=imported)
    for importer, imported in wrong:
        assert imported in upward_imports(importer, test_graph)
    for importer, imported in right:
        assert imported not in upward_imports(importer, test_graph)
