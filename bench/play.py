"""`play` benchmark: our Redis Stream executor against a raw Redis list round trip and a Celery peer.

Everything runs as its own process on 127.0.0.1 free ports, and everything is stopped at the end:

* one private `redis-server` (no persistence: `--save "" --appendonly no`), shared by all systems
  (db 0: our queue streams and the channels-redis layer; db 1: Celery; db 2: the raw lists);
* ours (`ours-w{1,2}-{all,errors}`): per system, one uvicorn serving `circleproject.asgi:application`
  with `REDIS_URL` and a stream of its own, and one `manage.py rhai_worker --concurrency N` (N = 1
  or 2 worker processes, forked by that command) with `CIRCLES_RECORD_RUNS` = `all` (every run
  writes a ScriptRun row, the default) or `errors`; one temp SQLite database made with
  `manage.py migrate` and `manage.py create_circle --pubkey <owner>`; the client signs in as the
  owner (`fetch_nonce` + `authenticate`, EIP-191) and calls `play` with `{"script": "1 + 1"}`;
* raw (`raw-w{1,2}`, `bench/raw_peer.py`): the client LPUSHes a job-sized payload (a real `Job`
  encoding, 460 bytes) to a list, a worker process BRPOPs it and LPUSHes an outcome-sized reply
  to the client's own list, which the client BRPOPs: the floor of a Redis round trip;
* celery (`celery-w{1,2}`, `bench/celery_peer.py`): one or two `celery worker -P solo` processes
  (Redis broker and result backend) whose task runs `rhai.Engine().eval(script)`; client threads
  call `run_script.apply_async(("1 + 1",), queue=...).get()`.

Phases, run for every system, interleaved (repeat 1: every system's phases, repeat 2: ...):

* latency: 1 client, sequential requests (`--latency-plays`, bounded by `--seconds`);
* throughput: `--clients` concurrent clients (signed-in WebSockets / Redis connections / threads),
  each doing sequential requests (`--plays-per-client`, bounded by `--seconds`).

Reported (medians over `--repeats`): p50/p99 round trip, requests/s, and CPU per job of each
role from /proc (utime+stime, all threads, plus forked children): the ASGI process, the workers,
redis-server, and this load generator. Targets: ours p50 <= 2 ms at low load; ours throughput
>= 3x the Celery peer's with the same worker count.

    .venv/bin/python -m bench.play [--clients 16] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from bench.helpers import (
    REPO,
    BenchError,
    cpu_seconds,
    keep_logs,
    machine,
    named_key,
    percentile,
    source_revision,
)
from bench.ws_rpc import RATE_ENV, Client, run_loop
from circles_client.keys import SigningKey
from executor.jobs import Job
from tests.helpers.processes import (
    PYTHON,
    ManagedProcess,
    free_port,
    manage,
    server_env,
    wait_for_port,
)
from tests.helpers.redis_server import RedisServer

SCRIPT = "1 + 1"
EXPECTED = 2
P50_TARGET_MS = 2.0
THROUGHPUT_TARGET = 3.0
PHASES = ("latency", "throughput")
ROLES = ("asgi", "workers", "redis", "client")
ALL_SYSTEMS = (
    "ours-w1-all",
    "ours-w2-all",
    "ours-w1-errors",
    "ours-w2-errors",
    "raw-w1",
    "raw-w2",
    "celery-w1",
    "celery-w2",
)
DEFAULT_SYSTEMS = ALL_SYSTEMS
CALL_TIMEOUT = 10.0


# --- CPU accounting -----------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """`pid` and every live process forked under it (/proc/<pid>/task/*/children, recursively)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
        except FileNotFoundError:
            continue
    return found


def tree_cpu(pids: list[int]) -> float:
    """utime+stime (seconds) of the processes `pids` and their descendants."""
    total = 0.0
    for root in pids:
        for pid in descendants(root):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += cpu_seconds(pid)
    return total


@dataclass
class CpuMeter:
    """CPU of every role of one system, read before and after a phase."""

    roles: dict[str, list[int]]
    before: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self.before = {role: tree_cpu(pids) for role, pids in self.roles.items()}
        self.before["client"] = time.process_time()
        self.before[REDIS_CMDS] = redis_commands()

    def stop(self) -> dict[str, float]:
        used = {role: tree_cpu(pids) - self.before[role] for role, pids in self.roles.items()}
        used["client"] = time.process_time() - self.before["client"]
        used[REDIS_CMDS] = redis_commands() - self.before[REDIS_CMDS] - 1  # minus the INFO itself
        return used


REDIS_CMDS = "redis_cmds"
_stats_client: list[redis.Redis] = []


def redis_commands() -> float:
    """Commands redis-server has processed so far (INFO stats), or nan before it runs."""
    if not _stats_client:
        return float("nan")
    return float(_stats_client[0].info("stats")["total_commands_processed"])


# --- samples ------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One phase against one system."""

    system: str
    phase: str
    repeat: int
    clients: int
    ops: int
    seconds: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    cpu_s: dict[str, float]

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def us_per_op(self, role: str) -> float:
        if role not in self.cpu_s or not self.ops:
            return float("nan")
        return 1e6 * self.cpu_s[role] / self.ops

    @property
    def redis_cmds_per_op(self) -> float:
        return self.cpu_s.get(REDIS_CMDS, float("nan")) / self.ops if self.ops else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "phase": self.phase,
            "repeat": self.repeat,
            "clients": self.clients,
            "ops": self.ops,
            "seconds": self.seconds,
            "rate": self.rate,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": self.mean_ms,
            "cpu_s": self.cpu_s,
            "us_per_op": {role: self.us_per_op(role) for role in self.cpu_s if role != REDIS_CMDS},
            "redis_cmds_per_op": self.redis_cmds_per_op,
        }


# --- the systems --------------------------------------------------------------------------------


@dataclass
class System:
    """One system under test: its processes (by role) and how a client talks to it."""

    name: str
    kind: str  # ours | raw | celery
    workers: int
    roles: dict[str, list[int]]
    url: str = ""  # ours: ws://.../<circle>; raw: redis URL
    queue: str = ""  # raw list / celery queue
    processes: list[ManagedProcess] = field(default_factory=list)


def start_redis(workdir: Path) -> RedisServer:
    """The private redis-server every system shares (no persistence)."""
    server = RedisServer(workdir, persist=False)
    try:
        server.start()
    except Exception:
        server.stop()
        raise
    return server


def uvicorn_argv(port: int) -> list[str]:
    return [
        PYTHON, "-m", "uvicorn", "circleproject.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log", "--lifespan", "off",
    ]  # fmt: skip


def parse_system(name: str) -> tuple[str, int, str]:
    """`ours-w2-errors` -> ("ours", 2, "errors"); `celery-w1` -> ("celery", 1, "")."""
    parts = name.split("-")
    return parts[0], int(parts[1][1:]), parts[2] if len(parts) > 2 else ""


def start_system(
    name: str, args: argparse.Namespace, workdir: Path, redis_port: int, redis_pid: int, owner: SigningKey
) -> System:
    """Start one system's processes (the caller stops `system.processes`)."""
    kind, workers, record = parse_system(name)
    redis_url = f"redis://127.0.0.1:{redis_port}"
    system = System(name, kind, workers, {"redis": [redis_pid]})
    code_root = args.code_root
    try:
        if kind == "ours":
            stream = f"bench:{name}:{uuid.uuid4().hex[:6]}"
            base = server_env(
                f"sqlite:///{workdir / 'circles.sqlite3'}",
                REDIS_URL=f"{redis_url}/0",
                CIRCLES_QUEUE_STREAM=stream,
                LOG_LEVEL="WARNING",
                # Every client signs in as the owner: throughput, not one member's share of it.
                CIRCLES_MAX_RUNS_PER_CALLER="0",
                CIRCLES_MAX_RUNS_PER_CIRCLE="0",
                **RATE_ENV,
            )
            worker_env = {**base, "CIRCLES_RECORD_RUNS": record}
            worker_env.update(item.split("=", 1) for item in args.worker_env)
            server_environment = dict(base)
            server_environment.update(item.split("=", 1) for item in args.ours_env)
            worker = ManagedProcess(
                [PYTHON, "manage.py", "rhai_worker", "--concurrency", str(workers)],
                env=worker_env,
                log_path=workdir / f"{name}-worker.log",
                cwd=code_root,
            )
            system.processes.append(worker)
            port = free_port()
            log = workdir / f"{name}-asgi.log"
            server = ManagedProcess(uvicorn_argv(port), env=server_environment, log_path=log, cwd=code_root)
            system.processes.append(server)
            try:
                wait_for_port(port, server.process)
            except Exception:
                raise RuntimeError(f"{name} uvicorn did not start:\n{server.output()}") from None
            system.roles.update(asgi=[server.pid], workers=[worker.pid])
            system.url = f"ws://127.0.0.1:{port}/{owner.pubkey}"
        elif kind == "raw":
            system.url, system.queue = f"{redis_url}/2", f"bench:raw:{name}"
            for index in range(workers):
                process = ManagedProcess(
                    [PYTHON, "-m", "bench.raw_peer", "--url", system.url, "--queue", system.queue],
                    env=dict(os.environ, PYTHONUNBUFFERED="1"),
                    log_path=workdir / f"{name}-{index}.log",
                )
                system.processes.append(process)
            system.roles["workers"] = [p.pid for p in system.processes]
        elif kind == "celery":
            system.url, system.queue = f"{redis_url}/1", f"bench-{name}"
            env = dict(os.environ, BENCH_CELERY_URL=system.url, PYTHONUNBUFFERED="1")
            for index in range(workers):
                argv = [
                    PYTHON, "-m", "celery", "-A", "bench.celery_peer", "worker", "-P", "solo", "-c", "1",
                    "-Q", system.queue, "-n", f"{name}-{index}@bench", "-l", "WARNING",
                    "--without-heartbeat", "--without-gossip", "--without-mingle",
                ]  # fmt: skip
                system.processes.append(
                    ManagedProcess(argv, env=env, log_path=workdir / f"{name}-{index}.log")
                )
            system.roles["workers"] = [p.pid for p in system.processes]
        else:
            raise ValueError(name)
    except BaseException:
        for process in system.processes:
            process.stop()
        raise
    return system


# --- load generators ----------------------------------------------------------------------------


@dataclass
class PhaseResult:
    ops: int
    seconds: float
    latencies: list[float]
    cpu_s: dict[str, float]


async def timed_loops(
    meter: CpuMeter,
    calls: list[Callable[[], Awaitable[None]]],
    per_client: int,
    seconds: float,
) -> PhaseResult:
    """Each `call` in its own task, sequentially up to `per_client` times or until the deadline."""
    latencies: list[float] = []

    async def loop(call: Callable[[], Awaitable[None]], deadline: float) -> int:
        done = 0
        while done < per_client and time.monotonic() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)
            done += 1
        return done

    meter.start()
    started = time.monotonic()
    async with asyncio.timeout(seconds + 60):
        ops = sum(await asyncio.gather(*(loop(call, started + seconds) for call in calls)))
    elapsed = time.monotonic() - started
    return PhaseResult(ops, elapsed, latencies, meter.stop())


async def ours_phase(system: System, owner: SigningKey, clients: int, per_client: int, seconds: float):
    options = {"compression": None, "ping_interval": None, "open_timeout": 10, "close_timeout": 10}
    params = {"script": SCRIPT}
    async with contextlib.AsyncExitStack() as stack:
        sockets = await asyncio.gather(
            *(stack.enter_async_context(connect(system.url, proxy=None, **options)) for _ in range(clients))
        )
        rpc = [Client(ws) for ws in sockets]

        async def sign_in(client: Client) -> None:
            nonce = await client.call("fetch_nonce", {"pubkey": owner.pubkey})
            ok = await client.call("authenticate", {"pubkey": owner.pubkey, "signature": owner.sign(nonce)})
            if ok is not True:
                raise BenchError(f"authenticate answered {ok!r}")

        await asyncio.gather(*(sign_in(client) for client in rpc))

        def play(client: Client) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                async with asyncio.timeout(CALL_TIMEOUT):
                    result = await client.call("play", params)
                if result.get("value") != EXPECTED:
                    raise BenchError(f"play answered {result!r:.300}")

            return call

        return await timed_loops(CpuMeter(system.roles), [play(c) for c in rpc], per_client, seconds)


def raw_job(reply_key: str) -> bytes:
    """A payload the size of a play job (it is one), whose reply_channel is the client's list."""
    job = Job.for_timeout(
        circle_id=1,
        circle_key="02" + "ab" * 32,
        caller_id="02" + "cd" * 32,
        caller_role="owner",
        source="ws",
        script=SCRIPT,
        timeout_ms=10_000,
        reply_channel=reply_key,
    )
    return job.encode()


async def raw_phase(system: System, clients: int, per_client: int, seconds: float):
    connections = [aioredis.Redis.from_url(system.url, single_connection_client=True) for _ in range(clients)]
    try:

        def exchange(index: int, connection: aioredis.Redis) -> Callable[[], Awaitable[None]]:
            # Same length as a channels-redis reply channel name, so the payload is a play job's size.
            reply_key = f"specific.{uuid.uuid4().hex}!{index:012d}"
            payload = raw_job(reply_key)

            async def call() -> None:
                await connection.lpush(system.queue, payload)
                item = await connection.brpop([reply_key], timeout=CALL_TIMEOUT)
                if item is None or orjson.loads(item[1])["outcome"]["result"]["value"] != EXPECTED:
                    raise BenchError(f"raw round trip answered {item!r:.300}")

            return call

        calls = [exchange(i, c) for i, c in enumerate(connections)]
        return await timed_loops(CpuMeter(system.roles), calls, per_client, seconds)
    finally:
        for connection in connections:
            await connection.aclose()


def celery_phase(system: System, clients: int, per_client: int, seconds: float) -> PhaseResult:
    from bench.celery_peer import run_script

    latencies: list[float] = []
    counts = [0] * clients
    errors: list[BaseException] = []
    meter = CpuMeter(system.roles)
    start_line = threading.Barrier(clients + 1)
    deadline = [0.0]

    def loop(index: int) -> None:
        start_line.wait(30)
        local: list[float] = []
        try:
            while counts[index] < per_client and time.monotonic() < deadline[0]:
                started = time.perf_counter()
                value = run_script.apply_async((SCRIPT,), queue=system.queue).get(timeout=CALL_TIMEOUT)
                local.append(time.perf_counter() - started)
                if value != EXPECTED:
                    raise BenchError(f"celery task answered {value!r}")
                counts[index] += 1
        except BaseException as exc:
            errors.append(exc)
        latencies.extend(local)  # list.extend is atomic under the GIL

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    meter.start()
    started = time.monotonic()
    deadline[0] = started + seconds
    start_line.wait(30)
    for thread in threads:
        thread.join(seconds + 60)
    elapsed = time.monotonic() - started
    cpu = meter.stop()
    if errors:
        raise BenchError(f"celery client failed: {errors[0]!r}") from errors[0]
    return PhaseResult(sum(counts), elapsed, latencies, cpu)


def run_phase(
    system: System, phase: str, args: argparse.Namespace, owner: SigningKey, *, warmup: bool = False
) -> PhaseResult:
    clients = 1 if phase == "latency" else args.clients
    per_client = args.latency_plays if phase == "latency" else args.plays_per_client
    seconds = args.latency_seconds if phase == "latency" else args.seconds
    if warmup:
        per_client, seconds = min(per_client, 20), min(seconds, 2.0)
    if system.kind == "ours":
        return run_loop(ours_phase(system, owner, clients, per_client, seconds))
    if system.kind == "raw":
        return run_loop(raw_phase(system, clients, per_client, seconds))
    return celery_phase(system, clients, per_client, seconds)


def wait_ready(system: System, args: argparse.Namespace, owner: SigningKey, timeout: float = 60.0) -> None:
    """Until one request goes through (workers take a while to import Django/Celery and connect)."""
    deadline = time.monotonic() + timeout
    single = argparse.Namespace(**{**vars(args), "latency_plays": 1, "latency_seconds": 1.0})
    while True:
        for process in system.processes:
            if not process.alive():
                raise RuntimeError(f"{system.name}: {process.argv[:4]} exited:\n{process.output()[-3000:]}")
        try:
            if run_phase(system, "latency", single, owner).ops:
                return
        except (BenchError, TimeoutError, OSError, redis.RedisError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{system.name} never answered: {exc!r}") from exc
        if time.monotonic() > deadline:
            raise RuntimeError(f"{system.name} never answered")
        time.sleep(0.2)


# --- report -------------------------------------------------------------------------------------


def summarise(samples: list[Sample]) -> dict[str, Any]:
    groups: dict[tuple[str, str], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.system, sample.phase), []).append(sample)
    rows: dict[str, dict[str, Any]] = {}
    for (system, phase), group in groups.items():
        rates = [s.rate for s in group]
        rows[f"{system}/{phase}"] = {
            "system": system,
            "phase": phase,
            "clients": group[0].clients,
            "repeats": len(group),
            "ops_median": statistics.median(s.ops for s in group),
            "rate_median": statistics.median(rates),
            "rate_min": min(rates),
            "rate_max": max(rates),
            "p50_ms_median": statistics.median(s.p50_ms for s in group),
            "p99_ms_median": statistics.median(s.p99_ms for s in group),
            "p50_ms_min": min(s.p50_ms for s in group),
            "us_per_op_median": {
                role: statistics.median(s.us_per_op(role) for s in group)
                for role in group[0].cpu_s
                if role != REDIS_CMDS
            },
            "redis_cmds_per_op_median": statistics.median(s.redis_cmds_per_op for s in group),
        }

    def row(system: str, phase: str) -> dict[str, Any] | None:
        return rows.get(f"{system}/{phase}")

    ratios: dict[str, dict[str, Any]] = {}
    for system in sorted({s.system for s in samples if s.system.startswith("ours-")}):
        latency = row(system, "latency")
        if latency:
            ratios[f"{system} p50 at 1 client (ms)"] = {
                "value": latency["p50_ms_median"],
                "target": f"<= {P50_TARGET_MS}",
                "met": latency["p50_ms_median"] <= P50_TARGET_MS,
            }
        _, workers, _ = parse_system(system)
        ours, peer = row(system, "throughput"), row(f"celery-w{workers}", "throughput")
        if ours and peer:
            throughput = [s for s in samples if s.phase == "throughput"]
            paired = {s.repeat: s.rate for s in throughput if s.system == system}
            peer_rates = {s.repeat: s.rate for s in throughput if s.system == f"celery-w{workers}"}
            value = ours["rate_median"] / peer["rate_median"]
            ratios[f"{system} throughput / celery-w{workers}"] = {
                "value": value,
                "per_repeat": [paired[r] / peer_rates[r] for r in sorted(paired) if peer_rates.get(r)],
                "target": f">= {THROUGHPUT_TARGET}",
                "met": value >= THROUGHPUT_TARGET,
            }
    for workers in (1, 2):
        raw, celery = row(f"raw-w{workers}", "throughput"), row(f"celery-w{workers}", "throughput")
        if raw and celery:
            ratios[f"celery-w{workers} / raw-w{workers} worker CPU per job"] = {
                "value": celery["us_per_op_median"]["workers"] / raw["us_per_op_median"]["workers"],
                "claim": "design doc: 6x",
            }
        ours = row(f"ours-w{workers}-all", "throughput")
        if raw and ours:
            ratios[f"ours-w{workers}-all / raw-w{workers} worker CPU per job"] = {
                "value": ours["us_per_op_median"]["workers"] / raw["us_per_op_median"]["workers"],
            }
    return {"rows": rows, "ratios": ratios}


def fmt(value: float, spec: str = ">7.0f") -> str:
    return format(value, spec) if value == value else format("-", spec[:-2].rstrip(".0123456789") + "s")


def print_report(summary: dict[str, Any], args: argparse.Namespace, systems: list[str]) -> None:
    print()
    print(
        f"medians of {args.repeats} interleaved repeats; latency phase: 1 client, sequential; "
        f"throughput phase: {args.clients} clients. CPU = utime+stime µs per request from /proc; "
        "cmds = redis-server commands per request (INFO stats)."
    )
    header = (
        f"{'system':<15} {'phase':<10} {'cli':>3} {'req/s':>7} {'[min - max]':>15} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'asgi µs':>8} {'work µs':>8} {'redis µs':>8} {'client µs':>9} {'cmds':>5}"
    )
    print(header)
    print("-" * len(header))
    for system in systems:
        for phase in PHASES:
            row = summary["rows"].get(f"{system}/{phase}")
            if row is None:
                continue
            cpu = row["us_per_op_median"]
            print(
                f"{system:<15} {phase:<10} {row['clients']:>3} {row['rate_median']:>7.0f} "
                f"[{row['rate_min']:>5.0f} - {row['rate_max']:>5.0f}] {row['p50_ms_median']:>7.2f} "
                f"{row['p99_ms_median']:>7.2f} {fmt(cpu.get('asgi', float('nan')), '>8.0f')} "
                f"{cpu['workers']:>8.0f} {cpu['redis']:>8.0f} {cpu['client']:>9.0f} "
                f"{row['redis_cmds_per_op_median']:>5.1f}"
            )
    print()
    for name, ratio in summary["ratios"].items():
        line = f"{name:<48} {ratio['value']:7.2f}"
        if "target" in ratio:
            line += f"   target {ratio['target']:<6} {'MET' if ratio['met'] else 'MISSED':<7}"
            if "per_repeat" in ratio:
                line += " per repeat: " + ", ".join(f"{r:.2f}" for r in ratio["per_repeat"])
        elif "claim" in ratio:
            line += f"   ({ratio['claim']})"
        print(line)


# --- main ---------------------------------------------------------------------------------------


def benchmark(args: argparse.Namespace, systems: list[System], owner: SigningKey) -> list[Sample]:
    for system in systems:
        wait_ready(system, args, owner)
        for phase in PHASES:
            run_phase(system, phase, args, owner, warmup=True)
    print(f"ready: {', '.join(s.name for s in systems)}", flush=True)
    samples: list[Sample] = []
    for repeat in range(args.repeats):
        for system in systems:
            for phase in PHASES:
                result = run_phase(system, phase, args, owner)
                latencies_ms = [1000 * x for x in result.latencies]
                sample = Sample(
                    system=system.name,
                    phase=phase,
                    repeat=repeat,
                    clients=1 if phase == "latency" else args.clients,
                    ops=result.ops,
                    seconds=result.seconds,
                    p50_ms=percentile(latencies_ms, 0.5),
                    p99_ms=percentile(latencies_ms, 0.99),
                    mean_ms=statistics.fmean(latencies_ms) if latencies_ms else float("nan"),
                    cpu_s=result.cpu_s,
                )
                samples.append(sample)
                cpu = " ".join(f"{r} {sample.us_per_op(r):.0f}" for r in ROLES if r in sample.cpu_s)
                cpu += f" redis cmds/req {sample.redis_cmds_per_op:.1f}"
                print(
                    f"  {repeat + 1}/{args.repeats} {system.name:<15} {phase:<10} {sample.ops:>6} req "
                    f"{sample.rate:>6.0f}/s p50 {sample.p50_ms:6.2f} p99 {sample.p99_ms:6.2f} ms  "
                    f"µs/req: {cpu}",
                    flush=True,
                )
    return samples


def export_commit(revision: str, directory: Path) -> Path:
    """`git archive REVISION` unpacked into `directory` (read-only for the repo): the code to run."""
    directory.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision], cwd=REPO, capture_output=True, check=True, timeout=60
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True, timeout=60)
    return directory


def manage_in(code_root: Path, env: dict[str, str], *args: str) -> None:
    """`manage.py ARGS` from `code_root` (the tree whose migrations and commands the servers run)."""
    if code_root == REPO:
        manage(env, *args)
        return
    subprocess.run(
        [PYTHON, "manage.py", *args], env=env, cwd=code_root, capture_output=True, check=True, timeout=120
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients in the throughput phase")
    parser.add_argument("--latency-plays", type=int, default=400, help="sequential requests, latency phase")
    parser.add_argument("--latency-seconds", type=float, default=2.0, help="time bound of a latency phase")
    parser.add_argument(
        "--plays-per-client", type=int, default=400, help="sequential requests per client, throughput phase"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="time bound of a throughput phase")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (medians reported)")
    parser.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        help=f"comma-separated subset of {', '.join(ALL_SYSTEMS)}",
    )
    parser.add_argument("--json", type=Path, help="also write the samples, medians and ratios here")
    parser.add_argument("--keep-logs", type=Path, help="copy the process logs into this directory")
    experiments = parser.add_argument_group("what-if experiments on ours (default: as shipped)")
    experiments.add_argument(
        "--code-root",
        type=Path,
        default=REPO,
        help="run uvicorn and rhai_worker from this tree (a patched copy outside the repo)",
    )
    experiments.add_argument(
        "--at-commit",
        metavar="REV",
        help="run uvicorn, rhai_worker and manage.py from `git archive REV` (not the working tree)",
    )
    experiments.add_argument(
        "--ours-env", action="append", default=[], metavar="KEY=VALUE", help="extra env for our uvicorn"
    )
    experiments.add_argument(
        "--worker-env", action="append", default=[], metavar="KEY=VALUE", help="extra env for our workers"
    )
    args = parser.parse_args(argv)
    args.system_names = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = [name for name in args.system_names if name not in ALL_SYSTEMS]
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {ALL_SYSTEMS}")
    if any("=" not in item for item in args.ours_env + args.worker_env):
        parser.error("--ours-env/--worker-env take KEY=VALUE")
    if min(args.clients, args.latency_plays, args.plays_per_client, args.repeats) < 1:
        parser.error("counts must be positive")
    if args.seconds <= 0 or args.latency_seconds <= 0:
        parser.error("time bounds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    owner = named_key("bench-play-owner")
    processes: list[ManagedProcess] = []
    systems: list[System] = []
    wall = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="play-bench-") as tmp:
        workdir = Path(tmp)
        try:
            redis_server = start_redis(workdir)
            redis_process, redis_port = redis_server.process, redis_server.port
            processes.append(redis_process)
            _stats_client.append(redis.Redis(host="127.0.0.1", port=redis_port))
            if args.at_commit:
                args.code_root = export_commit(args.at_commit, workdir / "code")
            env = server_env(f"sqlite:///{workdir / 'circles.sqlite3'}")
            manage_in(args.code_root, env, "migrate", "--noinput", "-v0")
            manage_in(args.code_root, env, "create_circle", "--name", "bench", "--pubkey", owner.pubkey)
            if any(name.startswith("celery-") for name in args.system_names):
                from bench.celery_peer import configure

                configure(f"redis://127.0.0.1:{redis_port}/1")
            for name in args.system_names:
                system = start_system(name, args, workdir, redis_port, redis_process.pid, owner)
                systems.append(system)
                processes.extend(system.processes)
            print(
                "processes: "
                + "; ".join(
                    f"{s.name} " + " ".join(f"{r}={pids}" for r, pids in s.roles.items() if r != "redis")
                    for s in systems
                )
                + f"; redis={redis_process.pid}",
                flush=True,
            )
            samples = benchmark(args, systems, owner)
        finally:
            for process in reversed(processes):
                process.stop()
            keep_logs(workdir, args.keep_logs)
    summary = summarise(samples)
    print_report(summary, args, args.system_names)
    print(f"\nwall time {time.monotonic() - wall:.0f} s")
    if args.json:
        document = {
            "command": " ".join([Path(sys.executable).name, "-m", "bench.play", *(argv or sys.argv[1:])]),
            "machine": machine(),
            "source": source_revision("circles", "circleproject", "executor", "auth_secp"),
            "settings": {
                key: value
                for key, value in vars(args).items()
                if key not in ("json", "keep_logs", "system_names")
            },
            "samples": [sample.as_dict() for sample in samples],
            **summary,
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
