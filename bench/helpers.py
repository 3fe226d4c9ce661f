"""What the benchmarks share: the repository root, CPU time of a process, a percentile, signing keys.

The benchmarks run as modules from the repository root (`.venv/bin/python -m bench.<name>`), so
`bench`, `tests.helpers` and `circles_client` import without touching `sys.path`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from circles_client.keys import SigningKey

REPO = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """utime + stime of process `pid` (all its threads), in seconds, from /proc/<pid>/stat.

    With `with_children`, the CPU of its waited-for children counts too (cutime + cstime). A
    process that is gone reads as NaN, so a summary shows the gap instead of failing the run.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    # After the ")" that closes the command name, index 11 is field 14 of proc(5) (utime), 12 is
    # stime, 13 and 14 are cutime and cstime.
    last = 15 if with_children else 13
    return sum(int(value) for value in fields[11:last]) / CLOCK_TICKS


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest-rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def named_key(name: str) -> SigningKey:
    """A deterministic client key derived from `name` (sha256), signing as the client library does."""
    return SigningKey.from_hex(hashlib.sha256(name.encode()).hexdigest())
