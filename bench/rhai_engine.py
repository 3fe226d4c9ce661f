"""Benchmark of the `rhai` binding (not part of the test suite).

Reports in one run:
  * per-call overhead of a trivial cached script (`eval` and `run`), in µs;
  * `fib(20)` (recursive script function) through the binding vs. a native Rust executable
    (rhai_py/examples/fib_native.rs) built from the same crate, the same Rhai version, the same
    engine builder and the same limits, as a speed ratio (native time / binding time).

Usage (from the repo root, after `pip install ./rhai_py`):
    .venv/bin/python bench/rhai_engine.py [--iterations 20] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import rhai

ROOT = Path(__file__).resolve().parent.parent
CRATE = ROOT / "rhai_py"
FIB = "fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } } fib(20)"
# Same limits on both sides: the engine defaults except operations and time, which fib(20) exceeds.
MAX_OPERATIONS = 100_000_000
TIMEOUT_MS = 60_000


def per_call_overhead_us(engine: rhai.Engine, method: str, calls: int = 20_000, repeats: int = 5) -> float:
    fn = getattr(engine, method)
    fn("1")  # compile and cache
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn("1")
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def binding_fib(engine: rhai.Engine, iterations: int) -> list[float]:
    """Wall time of `engine.run(FIB)` as seen from Python, per call, in ms."""
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        engine.run(FIB)
        times.append((time.perf_counter() - start) * 1000)
    return times


def build_native() -> Path:
    cmd = ["cargo", "build", "--release", "--quiet", "--example", "fib_native"]
    subprocess.run(cmd, cwd=CRATE, check=True)
    return CRATE / "target" / "release" / "examples" / "fib_native"


def native_fib(exe: Path, iterations: int) -> list[float]:
    """Per-run times of the native executable (it prints one JSON line per batch)."""
    out = subprocess.run(
        [str(exe), str(iterations), str(MAX_OPERATIONS), str(TIMEOUT_MS), FIB],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(out)
    assert data["value"] == "6765", data
    return data["times_ms"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=20, help="fib(20) runs per side (default 20)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved binding/native rounds (default 5)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    engine = rhai.Engine()
    eval_us = per_call_overhead_us(engine, "eval")
    run_us = per_call_overhead_us(engine, "run")
    fib_engine = rhai.Engine(max_operations=MAX_OPERATIONS, timeout_ms=TIMEOUT_MS)
    assert fib_engine.eval(FIB) == 6765
    exe = build_native()
    # Interleaved rounds, so that load from other processes hits both sides alike.
    b_times: list[float] = []
    n_times: list[float] = []
    for _ in range(args.rounds):
        b_times += binding_fib(fib_engine, args.iterations)
        n_times += native_fib(exe, args.iterations)
    binding = {"median_ms": statistics.median(b_times), "min_ms": min(b_times)}
    native = {"median_ms": statistics.median(n_times), "min_ms": min(n_times)}
    ratio = native["median_ms"] / binding["median_ms"]
    ratio_min = native["min_ms"] / binding["min_ms"]
    figures = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "rhai": rhai.RHAI_VERSION,
        "trivial_eval_cached_us": round(eval_us, 2),
        "trivial_run_cached_us": round(run_us, 2),
        "fib20_binding_median_ms": round(binding["median_ms"], 2),
        "fib20_binding_min_ms": round(binding["min_ms"], 2),
        "fib20_native_median_ms": round(native["median_ms"], 2),
        "fib20_native_min_ms": round(native["min_ms"], 2),
        "fib20_speed_ratio_binding_vs_native_median": round(ratio, 3),
        "fib20_speed_ratio_binding_vs_native_min": round(ratio_min, 3),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"machine: {figures['machine']}; rhai {figures['rhai']}")
        print(f"trivial cached eval('1'):  {eval_us:8.2f} µs/call   (target <= 20 µs)")
        print(f"trivial cached run('1'):   {run_us:8.2f} µs/call")
        for label, d in (("binding", binding), ("native", native)):
            print(f"fib(20) {label + ':':19}{d['median_ms']:8.2f} ms median ({d['min_ms']:.2f} min)")
        print(f"binding speed / native:    {ratio:8.3f}x by median, {ratio_min:.3f}x by min (target >= 0.9x)")
    ok = eval_us <= 20 and ratio >= 0.9
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
