"""uvicorn under cProfile, for `bench.live --profile-asgi`: SIGUSR1 writes the stats so far.

uvicorn re-raises the SIGTERM it stopped on, so a profiler's exit hook never runs; the
benchmark sends SIGUSR1 before stopping the server instead.

    python -m bench.profiled_asgi STATS_PATH <uvicorn arguments>
"""

import cProfile
import signal
import sys

import uvicorn


def main() -> None:
    path, arguments = sys.argv[1], sys.argv[2:]
    profile = cProfile.Profile()
    signal.signal(signal.SIGUSR1, lambda signum, frame: profile.dump_stats(path))
    sys.argv = ["uvicorn", *arguments]
    profile.enable()
    uvicorn.main()


if __name__ == "__main__":
    main()
