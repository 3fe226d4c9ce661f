"""CPU per job and per `play`, by process: where a trivial job's cost goes, and its ceiling.

On a machine whose cores are all busy, a throughput ratio is a ratio of CPU per operation, summed
over every process that takes part. This measures it: the servers of `bench.jobs` (one private
Redis and PostgreSQL, one `rhai_worker --concurrency P --job-slots J`, uvicorn with the jobs'
and `play`'s shares lifted), `--clients` signed-in members each running `play` "1 + 1", then
create+start+final notification of a "1 + 1" job, sequentially for `--seconds`; each process's
user+system CPU from /proc before and after each phase (process trees grouped: ASGI, workers,
PostgreSQL, Redis; and this client), per operation.

* `--asgi-processes N`: N uvicorn processes, the clients spread over them;
* `--rowless`: the servers and workers run with `bench.rowless_settings`, the jobs' four row
  statements replaced by dictionary operations (`bench.rowless_jobs`): the ceiling of the jobs'
  protocol with a database that costs nothing;
* `--record-runs all`: `play` saves a run row per run, as shipped (`bench.jobs`, and this by
  default, run the workers with `errors`: a successful `play` writes nothing).

    .venv/bin/python -m bench.job_costs [--clients 16] [--seconds 10] [--asgi-processes 1] [--rowless]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path

from bench.helpers import cpu_seconds, machine, named_key, source_revision, tree_cpu_seconds
from bench.jobs import OPEN_ENV, Member, job_once, play_once, start_uvicorn, timed
from bench.private_stack import circle_on_private_stack
from bench.ws_rpc import RATE_ENV
from tests.helpers.processes import PYTHON, ManagedProcess

CLIENT = "bench client"


def cpu_reading(roots: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each group (its roots' process trees) and of this client alone (the
    servers are its children)."""
    cpu = {name: sum(tree_cpu_seconds(pid) for pid in pids) for name, pids in roots.items()}
    cpu[CLIENT] = cpu_seconds(os.getpid())
    return cpu


async def measure(members: list[Member], roots: dict[str, list[int]], seconds: float) -> dict:
    for member in members[:2]:  # warm: imports, engines, connections
        await play_once(member)
        await job_once(member)
    phases = {}
    for name, op in (("play", play_once), ("jobs", job_once)):
        before = cpu_reading(roots)
        result = await timed(members, op, seconds)
        cpu = {group: spent - before[group] for group, spent in cpu_reading(roots).items()}
        phases[name] = {
            **result,
            "cpu_s": cpu,
            "cpu_ms_per_op": {k: 1000 * v / result["ops"] for k, v in cpu.items()},
        }
    return phases


async def scenario(urls: list[str], keys: list, roots: dict[str, list[int]], seconds: float) -> dict:
    async with contextlib.AsyncExitStack() as stack:
        members = [await Member.open(urls[i % len(urls)], key, stack) for i, key in enumerate(keys)]
        return await measure(members, roots, seconds)


def print_report(phases: dict, args: argparse.Namespace) -> None:
    play, jobs = phases["play"], phases["jobs"]
    rows = sorted(play["cpu_ms_per_op"], key=lambda k: -jobs["cpu_ms_per_op"][k])
    mode = "job rows in memory (--rowless)" if args.rowless else "as shipped"
    print(f"\n{args.clients} clients, {args.asgi_processes} ASGI process(es), {mode}, "
          f"play's run rows: {args.record_runs}")  # fmt: skip
    print(f"{'CPU per operation':24s} {'play':>9s} {'job':>9s} {'job/play':>9s}")
    per_play, per_job = sum(play["cpu_ms_per_op"].values()), sum(jobs["cpu_ms_per_op"].values())
    lines = [(name, play["cpu_ms_per_op"][name], jobs["cpu_ms_per_op"][name]) for name in rows]
    for name, p, j in [*lines, ("total", per_play, per_job)]:
        ratio = f"{j / p:8.2f}x" if p else "        -"
        print(f"{name:24s} {p:7.3f}ms {j:7.3f}ms {ratio}")
    cores = sum(jobs["cpu_s"].values()) / args.seconds
    print(f"throughput: play {play['rate']:.0f}/s, jobs {jobs['rate']:.0f}/s, "
          f"jobs/play {jobs['rate'] / play['rate']:.2f}x")  # fmt: skip
    print(f"CPU per play / CPU per job {per_play / per_job:.2f}x; {cores:.2f} cores busy in the jobs phase")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent members")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--asgi-processes", type=int, default=1, help="uvicorn processes sharing the clients")
    parser.add_argument("--rowless", action="store_true", help="the jobs' rows in memory: the ceiling")
    parser.add_argument("--play-workers", type=int, default=2, help="rhai_worker --concurrency")
    parser.add_argument("--job-slots", type=int, default=2, help="rhai_worker --job-slots")
    parser.add_argument(
        "--record-runs", choices=("errors", "all"), default="errors",
        help="the workers' CIRCLES_RECORD_RUNS (bench.jobs: errors; shipped default: all)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if min(args.clients, args.asgi_processes, args.play_workers, args.job_slots) < 1 or args.seconds <= 0:
        parser.error("counts and seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    owner = named_key("bench-job-costs-owner")
    keys = [named_key(f"bench-job-costs-member-{i}") for i in range(args.clients)]
    processes: list[ManagedProcess] = []
    with circle_on_private_stack("bench-job-costs", owner, keys, **RATE_ENV) as stack:
        env = {**stack.env, "DJANGO_SETTINGS_MODULE": "bench.rowless_settings"} if args.rowless else stack.env
        try:
            worker = ManagedProcess(
                [PYTHON, "manage.py", "rhai_worker", "--concurrency", str(args.play_workers),
                 "--job-slots", str(args.job_slots)],
                env={**env, "CIRCLES_RECORD_RUNS": args.record_runs},
                log_path=stack.workdir / "worker.log",
            )  # fmt: skip
            processes.append(worker)
            urls, servers = [], []
            for i in range(args.asgi_processes):
                server, port = start_uvicorn({**env, **OPEN_ENV}, stack.workdir / f"asgi-{i}.log")
                processes.append(server)
                servers.append(server.pid)
                urls.append(f"ws://127.0.0.1:{port}/{owner.pubkey}")
            assert stack.postgres.process is not None and stack.redis.process is not None
            roots = {
                "ASGI": servers,
                "workers (play, slots)": [worker.pid],
                "PostgreSQL": [stack.postgres.process.pid],
                "Redis": [stack.redis.process.pid],
            }
            phases = asyncio.run(scenario(urls, keys, roots, args.seconds))
        finally:
            for process in reversed(processes):
                process.stop()
    print_report(phases, args)
    if args.json:
        document = {
            "command": " ".join(
                [Path(sys.executable).name, "-m", "bench.job_costs", *(argv or sys.argv[1:])]
            ),
            "machine": machine(),
            "source": source_revision("circles", "circleproject", "executor", "bench"),
            "settings": {k: v for k, v in vars(args).items() if k != "json"},
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "phases": phases,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
