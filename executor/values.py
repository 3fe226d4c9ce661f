"""Script values to JSON by the fixed rules of docs/SCRIPTING.md (pure logic).

unit→null, bool, int, float (NaN and infinities are an error), string, char→string,
blob→base64 string, array→list, map→object with string keys.
"""

import base64
import math
from typing import Any

MAX_DEPTH = 64


class NotJsonSafe(ValueError):
    """A script value that has no JSON form (NaN, infinity, too deep)."""


def to_json(value: Any, *, _depth: int = 0) -> Any:
    """The JSON form of a value the Rhai binding returned; raises NotJsonSafe."""
    if _depth > MAX_DEPTH:
        raise NotJsonSafe(f"value nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotJsonSafe(f"{value} has no JSON form")
        return value
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, list | tuple):
        return [to_json(item, _depth=_depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json(item, _depth=_depth + 1) for key, item in value.items()}
    raise NotJsonSafe(f"{type(value).__name__} has no JSON form")
