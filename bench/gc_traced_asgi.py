"""uvicorn with its garbage collections timed, for `bench.live --trace-gc`: a fan-out's tail suspect.

Every collection that takes at least 2 ms is printed to stderr (the server's log) as
`gc gen=<generation> ms=<duration> collected=<objects>`, with the time (perf_counter) it ended.
The collector is set as production sets it first (`circleproject.gc_tuning`, CIRCLES_GC_THRESHOLDS).
With BENCH_GC_FREEZE=1 the app is imported first and `gc.freeze()` called (a what-if).

    python -m bench.gc_traced_asgi <uvicorn arguments>
"""

import gc
import os
import sys
import time
from typing import Any

import uvicorn

_started = [0.0]


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    took = time.perf_counter() - _started[0]
    if took >= 0.002:
        sys.stderr.write(
            f"gc gen={info['generation']} ms={1000 * took:.1f} collected={info['collected']} "
            f"at={time.perf_counter():.3f}\n"
        )


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "circleproject.settings")
    from circleproject.gc_tuning import tune_gc

    tune_gc()  # as production (circleproject.serve) and bench.tuned_asgi do
    if os.environ.get("BENCH_GC_FREEZE"):  # what-if: the app's startup heap out of every collection
        import circleproject.asgi  # noqa: F401  (Django set up, the app built)

        gc.freeze()
    gc.callbacks.append(_timed)
    sys.argv = ["uvicorn", *sys.argv[1:]]
    uvicorn.main()


if __name__ == "__main__":
    main()
