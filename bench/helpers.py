"""What the benchmarks share: the repository's revision, the machine, CPU time, a percentile, keys, logs.

The benchmarks run as modules from the repository root (`.venv/bin/python -m bench.<name>`), so
`bench`, `tests.helpers` and `circles_client` import without touching `sys.path`.
"""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from circles_client.keys import SigningKey

REPO = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A system under test answered something other than the expected result."""


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


def source_revision(*packages: str) -> dict[str, Any]:
    """The commit the measured code comes from, and which files of `packages` differ from it.

    Read-only git; both None when git cannot tell (not a checkout, no git).
    """
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", *packages],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "server_files_changed": None}
    return {"commit": commit or None, "server_files_changed": [line for line in changed if line.strip()]}


def machine() -> dict[str, Any]:
    """What a result document says about the machine it was measured on."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "loadavg_at_end": os.getloadavg(),
    }


def keep_logs(workdir: Path, destination: Path | None) -> None:
    """Copy the run's process logs (`*.log` anywhere under `workdir`) into `destination`, if given."""
    if destination is None:
        return
    destination.mkdir(parents=True, exist_ok=True)
    for log in workdir.rglob("*.log"):
        (destination / log.name).write_bytes(log.read_bytes())


def raise_file_limit(needed: int) -> tuple[int, int]:
    """Raise this process's open-files soft limit toward `needed` (at most the hard limit).

    Child processes inherit it, so call it before starting the servers and load generators.
    Returns the (soft, hard) limit in force afterwards.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def descendants(pid: int) -> list[int]:
    """The live processes below `pid` (children, grandchildren, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and every live process below it (a supervisor and its workers)."""
    total = cpu_seconds(pid, with_children=True)
    for child in descendants(pid):
        value = cpu_seconds(child)
        if value == value:  # a child that exited between the scan and the read: NaN, skipped
            total += value
    return total
