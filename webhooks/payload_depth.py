"""How deeply a parsed payload nests, checked before a delivery is stored and queued (pure logic).

The handler script gets the payload as its `EVENT` constant, and the Rhai binding refuses a
value nested deeper than its `max_value_depth` (64 by default, `rhai.Engine`): such an event,
once accepted, failed every retry with a traceback. The job's JSON (orjson) stops at 254 levels.
So a payload deeper than `CIRCLES_WEBHOOK_MAX_DEPTH` (never more than the engine's limit) is a
malformed event: 400, recorded as rejected, never queued.
"""

from collections.abc import Iterable
from typing import Any

from django.conf import settings

from webhooks.providers import MalformedEvent

RHAI_DEFAULT_MAX_VALUE_DEPTH = 64  # rhai.Engine's default, used unless CIRCLES_SCRIPT_LIMITS sets one


def nesting_depth(value: Any, stop_above: int) -> int:
    """Containers (dicts, lists) nested in `value`, counting its own level; stops counting past `stop_above`.

    Iterative, so a payload nested near orjson's parse limit (1024) cannot exhaust Python's stack.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > stop_above:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def max_payload_depth() -> int:
    """The deepest payload accepted: `CIRCLES_WEBHOOK_MAX_DEPTH`, capped by the engine's `max_value_depth`."""
    engine_limit = settings.CIRCLES_SCRIPT_LIMITS.get("max_value_depth", RHAI_DEFAULT_MAX_VALUE_DEPTH)
    return min(settings.CIRCLES_WEBHOOK_MAX_DEPTH, engine_limit)


def check_depth(payload: Any) -> None:
    """Raise MalformedEvent when `payload` nests deeper than `max_payload_depth()`."""
    limit = max_payload_depth()
    if nesting_depth(payload, limit) > limit:
        raise MalformedEvent(f"nested deeper than {limit} levels")
