"""Jobs benchmark: throughput against `play`, finish → notification latency, stop latency, fairness.

Everything runs as its own process on 127.0.0.1 free ports and is stopped at the end: one private
`redis-server` (no persistence), one private PostgreSQL (the production database; fsync off),
one `manage.py rhai_worker --concurrency P --job-slots J` (P play workers, J job slots) and two
uvicorn processes on the same database, Redis and workers:

* `open`: the jobs' shares and active bound lifted (`CIRCLES_JOBS_MAX_RUNNING_PER_*=0`,
  `CIRCLES_JOBS_MAX_ACTIVE_PER_CALLER=64`) and `play`'s shares lifted: raw throughput;
* `shipped`: every job setting at its default: the latencies and the fairness phase.

Clients are signed-in members of one circle (`--clients` of them, one key each), speaking the
wire protocol on their own WebSocket (no client library), each subscribed to its own jobs.

Phases (the two throughput phases interleaved `--repeats` times, medians reported):

* `play`: each client calls `play` "1 + 1" sequentially for `--seconds`;
* `jobs`: each client, sequentially for `--seconds`: `create_job` "1 + 1", `start_job`, then
  waits for the job's final notification. Ratio jobs/play (target >= 0.5x);
* finish → notification: one client runs `--latency-jobs` jobs one after the other; for each,
  the time from the job row's `finished_at` (set by the job slot as the run ends, read from
  PostgreSQL afterwards in microseconds) to the client receiving the final notification
  (`time.time()` on the same machine: one clock). p50 (target <= 5 ms);
* stop: `--stops` times, a `loop {}` job is started and, once its `started` notification came,
  `stop_job` is sent; the time until its final notification (`error`, kind `stopped`). p99
  (target <= 200 ms);
* fairness: another member's sequential `play` p50 for `--seconds` on idle workers, then again
  while one member keeps its maximum of `loop {}` jobs (CIRCLES_JOBS_MAX_ACTIVE_PER_CALLER,
  as many running as its share and the slots allow) going. Ratio loaded/idle (target <= 2x).

    .venv/bin/python -m bench.jobs [--clients 16] [--seconds 3] [--repeats 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from websockets.asyncio.client import ClientConnection, connect

from bench.helpers import BenchError, machine, named_key, percentile, source_revision
from bench.private_stack import circle_on_private_stack
from bench.ws_rpc import RATE_ENV
from circles_client.keys import SigningKey
from tests.helpers.processes import PYTHON, ManagedProcess, free_port, wait_for_port

SCRIPT = "1 + 1"
LOOP = "loop {}"
THROUGHPUT_TARGET = 0.5
NOTIFY_P50_TARGET_MS = 5.0
STOP_P99_TARGET_MS = 200.0
FAIRNESS_TARGET = 2.0
CALL_TIMEOUT = 30.0
OPEN_ENV = {
    "CIRCLES_JOBS_MAX_RUNNING_PER_CALLER": "0",
    "CIRCLES_JOBS_MAX_RUNNING_PER_CIRCLE": "0",
    "CIRCLES_JOBS_MAX_ACTIVE_PER_CALLER": "64",
    "CIRCLES_MAX_RUNS_PER_CALLER": "0",
    "CIRCLES_MAX_RUNS_PER_CIRCLE": "0",
}
SHIPPED_MAX_ACTIVE = 8  # CIRCLES_JOBS_MAX_ACTIVE_PER_CALLER's default


class Member:
    """One signed-in member's WebSocket: calls answered by id, its jobs' notifications by job id."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.answers: dict[int, asyncio.Future] = {}
        self.waiting: dict[str, tuple[Callable[[dict], bool], asyncio.Future]] = {}
        self.early: dict[str, list[dict]] = {}  # notifications of jobs nobody waits for yet
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, url: str, key: SigningKey, stack: contextlib.AsyncExitStack) -> Member:
        options = {"compression": None, "ping_interval": None, "open_timeout": 10, "max_size": 2**22}
        ws = await stack.enter_async_context(connect(url, proxy=None, **options))
        member = cls(ws)
        stack.push_async_callback(member.close)
        nonce = await member.call("fetch_nonce", {"pubkey": key.pubkey})
        if (
            await member.call("authenticate", {"pubkey": key.pubkey, "signature": key.sign(nonce)})
            is not True
        ):
            raise BenchError("sign-in refused")
        await member.call("subscribe", {"topic": "jobs"})
        return member

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader

    async def _read(self) -> None:
        async for frame in self.ws:
            received = time.time()
            message = orjson.loads(frame)
            if message.get("method") == "subscription":
                result = message["params"]["result"]
                result["_received"] = received
                job_id = result["job_id"]
                entry = self.waiting.get(job_id)
                if entry is not None and entry[0](result) and not entry[1].done():
                    entry[1].set_result(result)
                elif entry is None:
                    self.early.setdefault(job_id, []).append(result)
                continue
            future = self.answers.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_result(message)

    async def call(self, method: str, params: Any = None) -> Any:
        request_id = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.answers[request_id] = future
        request = {"jsonrpc": "2.0", "method": method, "id": request_id, "params": params or {}}
        await self.ws.send(orjson.dumps(request).decode())
        async with asyncio.timeout(CALL_TIMEOUT):
            response = await future
        if "result" not in response:
            raise BenchError(f"{method}: {response!r:.300}")
        return response["result"]

    async def until(self, job_id: str, predicate: Callable[[dict], bool]) -> dict:
        """The first notification of `job_id` that satisfies `predicate` (also one that came already)."""
        for result in self.early.pop(job_id, []):
            if predicate(result):
                return result
        future = asyncio.get_running_loop().create_future()
        self.waiting[job_id] = (predicate, future)
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                return await future
        finally:
            self.waiting.pop(job_id, None)

    async def final(self, job_id: str) -> dict:
        return await self.until(job_id, lambda n: n["status"] in ("finished", "error"))


# --- phases ---------------------------------------------------------------------------------------


async def timed(members: list[Member], op: Callable[[Member], Awaitable[None]], seconds: float) -> dict:
    """Each member runs `op` sequentially until `seconds` passed: ops/s and latency percentiles."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def loop(member: Member) -> int:
        done = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            await op(member)
            latencies.append(time.perf_counter() - started)
            done += 1
        return done

    started = time.monotonic()
    ops = sum(await asyncio.gather(*(loop(m) for m in members)))
    elapsed = time.monotonic() - started
    return {
        "ops": ops,
        "rate": ops / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


async def play_once(member: Member) -> None:
    result = await member.call("play", {"script": SCRIPT})
    if result.get("value") != 2:
        raise BenchError(f"play answered {result!r:.200}")


async def job_once(member: Member) -> dict:
    job_id = await member.call("create_job", {"script": SCRIPT, "timeout": 60})
    await member.call("start_job", {"job_id": job_id})
    final = await member.final(job_id)
    if final["status"] != "finished" or final["output"] != "2":
        raise BenchError(f"job ended {final!r:.300}")
    return final


async def notify_latencies(member: Member, count: int, database_url: str) -> list[float]:
    """Seconds from each job's finished_at (PostgreSQL, microseconds) to its final notification."""
    received: dict[str, float] = {}
    for _ in range(count):
        final = await job_once(member)
        received[final["job_id"]] = final["_received"]
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT id::text, finished_at FROM executor_jobrecord WHERE id::text = ANY(%s)", [list(received)]
        ).fetchall()
    finished: dict[str, datetime] = dict(rows)
    return [received[job_id] - finished[job_id].timestamp() for job_id in received]


async def stop_latencies(member: Member, count: int) -> list[float]:
    """Seconds from sending `stop_job` for a started `loop {}` job to its final notification."""
    latencies = []
    for _ in range(count):
        job_id = await member.call("create_job", {"script": LOOP, "timeout": 600})
        await member.call("start_job", {"job_id": job_id})
        await member.until(job_id, lambda n: n["status"] == "started")
        sent = time.time()
        answer = asyncio.ensure_future(member.call("stop_job", {"job_id": job_id}))
        final = await member.final(job_id)
        latencies.append(final["_received"] - sent)
        await answer
        if final["status"] != "error" or (final.get("error") or {}).get("kind") != "stopped":
            raise BenchError(f"stopped job ended {final!r:.300}")
    return latencies


async def fairness(player: Member, hog: Member, seconds: float, slots: int) -> dict:
    """`player`'s play p50 on idle workers, then while `hog` keeps its maximum of long jobs going."""
    idle = await timed([player], play_once, seconds)
    jobs = [await hog.call("create_job", {"script": LOOP, "timeout": 600}) for _ in range(SHIPPED_MAX_ACTIVE)]
    for job_id in jobs:
        await hog.call("start_job", {"job_id": job_id})
    running = min(slots, 2)  # CIRCLES_JOBS_MAX_RUNNING_PER_CALLER's default: its share of the slots
    for job_id in jobs[:running]:
        await hog.until(job_id, lambda n: n["status"] == "started")
    loaded = await timed([player], play_once, seconds)
    for job_id in jobs:
        await hog.call("stop_job", {"job_id": job_id})
    for job_id in jobs:
        await hog.final(job_id)
    return {"idle": idle, "loaded": loaded, "hog_running": running, "hog_active": len(jobs)}


async def scenario(args: argparse.Namespace, urls: dict[str, str], keys: list[SigningKey], db: str) -> dict:
    async with contextlib.AsyncExitStack() as stack:
        open_members = [await Member.open(urls["open"], key, stack) for key in keys[: args.clients]]
        for member in open_members[:2]:  # warm: imports, engines, connections
            await play_once(member)
            await job_once(member)
        throughput: dict[str, list[dict]] = {"play": [], "jobs": []}
        for _ in range(args.repeats):
            throughput["play"].append(await timed(open_members, play_once, args.seconds))
            throughput["jobs"].append(await timed(open_members, job_once, args.seconds))
        shipped = [await Member.open(urls["shipped"], key, stack) for key in keys[-2:]]
        notify = await notify_latencies(shipped[0], args.latency_jobs, db)
        stops = await stop_latencies(shipped[0], args.stops)
        fair = [
            await fairness(shipped[0], shipped[1], args.seconds, args.job_slots) for _ in range(args.repeats)
        ]
    return {"throughput": throughput, "notify_s": notify, "stop_s": stops, "fairness": fair}


def summarise(raw: dict) -> dict:
    play = statistics.median(s["rate"] for s in raw["throughput"]["play"])
    jobs = statistics.median(s["rate"] for s in raw["throughput"]["jobs"])
    idle = statistics.median(f["idle"]["p50_ms"] for f in raw["fairness"])
    loaded = statistics.median(f["loaded"]["p50_ms"] for f in raw["fairness"])
    notify_ms = [s * 1000 for s in raw["notify_s"]]
    stop_ms = [s * 1000 for s in raw["stop_s"]]
    return {
        "play_per_s": play,
        "jobs_per_s": jobs,
        "throughput_ratio": jobs / play,
        "jobs_latency_p50_ms": statistics.median(s["p50_ms"] for s in raw["throughput"]["jobs"]),
        "play_latency_p50_ms": statistics.median(s["p50_ms"] for s in raw["throughput"]["play"]),
        "notify_p50_ms": percentile(notify_ms, 0.5),
        "notify_p99_ms": percentile(notify_ms, 0.99),
        "stop_p50_ms": percentile(stop_ms, 0.5),
        "stop_p99_ms": percentile(stop_ms, 0.99),
        "play_p50_idle_ms": idle,
        "play_p50_loaded_ms": loaded,
        "fairness_ratio": loaded / idle,
    }


def print_report(summary: dict, args: argparse.Namespace) -> None:
    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    s = summary
    print(f"\n{args.clients} clients, {args.play_workers} play workers, {args.job_slots} job slots")
    print(f"throughput  play {s['play_per_s']:8.1f}/s   jobs {s['jobs_per_s']:8.1f}/s   "
          f"ratio {s['throughput_ratio']:.2f}x (target >= {THROUGHPUT_TARGET}x) "
          f"{verdict(s['throughput_ratio'] >= THROUGHPUT_TARGET)}")  # fmt: skip
    print(f"            round trip p50: play {s['play_latency_p50_ms']:.2f} ms, "
          f"create+start+final {s['jobs_latency_p50_ms']:.2f} ms")  # fmt: skip
    notified, stopped = s["notify_p50_ms"] <= NOTIFY_P50_TARGET_MS, s["stop_p99_ms"] <= STOP_P99_TARGET_MS
    print(f"finish -> notification  p50 {s['notify_p50_ms']:.2f} ms  p99 {s['notify_p99_ms']:.2f} ms "
          f"(target p50 <= {NOTIFY_P50_TARGET_MS} ms) {verdict(notified)}")  # fmt: skip
    print(f"stop -> final notification  p50 {s['stop_p50_ms']:.1f} ms  p99 {s['stop_p99_ms']:.1f} ms "
          f"(target p99 <= {STOP_P99_TARGET_MS} ms) {verdict(stopped)}")  # fmt: skip
    print(f"fairness  play p50 idle {s['play_p50_idle_ms']:.2f} ms, with one member's long jobs "
          f"{s['play_p50_loaded_ms']:.2f} ms: {s['fairness_ratio']:.2f}x (target <= {FAIRNESS_TARGET}x) "
          f"{verdict(s['fairness_ratio'] <= FAIRNESS_TARGET)}")  # fmt: skip


def start_uvicorn(env: dict[str, str], log: Path) -> tuple[ManagedProcess, int]:
    port = free_port()
    argv = [
        PYTHON, "-m", "uvicorn", "circleproject.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log", "--lifespan", "off",
    ]  # fmt: skip
    process = ManagedProcess(argv, env=env, log_path=log)
    wait_for_port(port, process.process)
    return process, port


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent members, throughput phases")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of a timed phase")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats (medians reported)")
    parser.add_argument("--latency-jobs", type=int, default=200, help="sequential jobs, notification latency")
    parser.add_argument("--stops", type=int, default=50, help="stopped jobs, stop latency")
    parser.add_argument("--play-workers", type=int, default=2, help="rhai_worker --concurrency")
    parser.add_argument("--job-slots", type=int, default=2, help="rhai_worker --job-slots")
    parser.add_argument("--json", type=Path, help="also write the samples and the summary here")
    args = parser.parse_args(argv)
    if min(args.clients, args.repeats, args.latency_jobs, args.stops, args.play_workers, args.job_slots) < 1:
        parser.error("counts must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    owner = named_key("bench-jobs-owner")
    keys = [named_key(f"bench-jobs-member-{i}") for i in range(args.clients + 2)]
    processes: list[ManagedProcess] = []
    wall = time.monotonic()
    with circle_on_private_stack("bench-jobs", owner, keys, **RATE_ENV) as stack:
        try:
            worker = ManagedProcess(
                [PYTHON, "manage.py", "rhai_worker", "--concurrency", str(args.play_workers),
                 "--job-slots", str(args.job_slots)],
                env={**stack.env, "CIRCLES_RECORD_RUNS": "errors"},
                log_path=stack.workdir / "worker.log",
            )  # fmt: skip
            processes.append(worker)
            urls = {}
            for name, extra in (("open", OPEN_ENV), ("shipped", {})):
                server, port = start_uvicorn({**stack.env, **extra}, stack.workdir / f"{name}.log")
                processes.append(server)
                urls[name] = f"ws://127.0.0.1:{port}/{owner.pubkey}"
            raw = asyncio.run(scenario(args, urls, keys, stack.database_url))
        finally:
            for process in reversed(processes):
                process.stop()
    summary = summarise(raw)
    print_report(summary, args)
    print(f"\nwall time {time.monotonic() - wall:.0f} s")
    if args.json:
        document = {
            "command": " ".join([Path(sys.executable).name, "-m", "bench.jobs", *(argv or sys.argv[1:])]),
            "machine": machine(),
            "source": source_revision("circles", "circleproject", "executor", "rhai_py"),
            "settings": {k: v for k, v in vars(args).items() if k != "json"},
            "raw": raw,
            **summary,
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
