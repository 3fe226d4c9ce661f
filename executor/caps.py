"""Caps on what one run sends back and what its ScriptRun row keeps (pure logic).

A run's answer (its value as JSON and its printed `output`) is refused past
`CIRCLES_RESULT_MAX_BYTES`: the caller gets a `result_size` error and the run's writes are
rolled back, as for any failed run. What the row keeps of the script, output, value and logs is
cut at `CIRCLES_RUN_RECORD_MAX_BYTES` each, with a marker saying how much there was: the row
is for operators, and one run must not store hundreds of megabytes.
"""

from typing import Any

import orjson

TRUNCATED = "…[truncated: {size} bytes in all]"
LOGS_TRUNCATED = "[logs truncated: {size} bytes in all]"


class ResultTooLarge(ValueError):
    """The run's answer is bigger than the result cap."""


def check_answer(output: str, value: Any, max_bytes: int) -> None:
    """Raise ResultTooLarge when `output` or the JSON form of `value` passes `max_bytes`."""
    # Every character is at least one byte: a longer string need not be encoded to be refused.
    if len(output) > max_bytes or len(output.encode()) > max_bytes:
        raise ResultTooLarge(f"the script's output is more than {max_bytes} bytes (CIRCLES_RESULT_MAX_BYTES)")
    value_bytes = len(orjson.dumps(value))
    if value_bytes > max_bytes:
        raise ResultTooLarge(
            f"the script's value is {value_bytes} bytes as JSON, more than {max_bytes} "
            "(CIRCLES_RESULT_MAX_BYTES)"
        )


def cut_text(text: str, max_bytes: int) -> str:
    """`text` whole if its UTF-8 form fits in `max_bytes`, else its head and a marker."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode(errors="ignore") + TRUNCATED.format(size=len(encoded))


def cut_value(value: Any, max_bytes: int) -> Any:
    """`value` whole if its JSON form fits in `max_bytes`, else a marker object with its head."""
    if value is None:
        return None
    text = orjson.dumps(value)
    if len(text) <= max_bytes:
        return value
    return {"truncated": True, "bytes": len(text), "head": text[:max_bytes].decode(errors="ignore")}


def cut_logs(logs: list[str], max_bytes: int) -> list[str]:
    """The lines of `logs` that fit in `max_bytes` in all (the last one cut), then a marker line."""
    total = sum(len(line.encode()) for line in logs)
    if total <= max_bytes:
        return logs
    kept: list[str] = []
    room = max_bytes
    for line in logs:
        encoded = line.encode()
        if len(encoded) > room:
            head = encoded[:room].decode(errors="ignore")
            if head:
                kept.append(head)
            break
        kept.append(line)
        room -= len(encoded)
    kept.append(LOGS_TRUNCATED.format(size=total))
    return kept
