"""uvicorn with the server process's garbage collector set as production sets it, for `bench.live`'s head.

`circleproject.serve` (the production entry point) calls `circleproject.gc_tuning.tune_gc`
before it serves; the benchmark runs head and base with the same plain uvicorn command line, so
head's goes through this to get the same collector settings (CIRCLES_GC_THRESHOLDS).

    python -m bench.tuned_asgi <uvicorn arguments>
"""

import os
import sys

import uvicorn


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "circleproject.settings")
    from circleproject.gc_tuning import tune_gc

    tune_gc()
    sys.argv = ["uvicorn", *sys.argv[1:]]
    uvicorn.main()


if __name__ == "__main__":
    main()
