"""Live records benchmark (issue 13): write → notification latency, fan-out, notification rate, write cost.

Everything runs as its own process on 127.0.0.1 free ports, and everything is stopped at the end:

* one private `redis-server` (no persistence), shared: db 0 our queue streams, pub/sub and
  channel layer, db 3 the Channels baseline's layer;
* a temp SQLite database per system (or, with `--postgres`, a private PostgreSQL:
  tests/helpers/postgres_server.py), made with `manage.py migrate` and `create_circle`;
* ours (`head`): uvicorn serving `circleproject.asgi:application` with REDIS_URL, and
  `manage.py rhai_worker --concurrency N` (`--workers`, default 1), from the working tree;
* the tree without the change log (`base`, `--base-commit`, default 7875879, the commit before
  the change log): the same two processes from `git archive <commit>` (bench.play.export_commit),
  its own database and stream;
* the Channels way (`channels`): uvicorn serving `bench.live_channels:application`, consumers in
  a per-circle group on `channels_redis.core.RedisChannelLayer`, each forwarding every group
  message to its socket;
* publishers (`bench.live_publish`, child processes commanded on stdin): ours makes real change
  rows (numbered in their transaction) and publishes them after the commit, the code path of a
  script's `db::put` without the script; Channels' calls `group_send` once per change;
* subscribers in child processes (`--processes`), each with its own WebSockets, scheduled
  SCHED_BATCH (`--policy batch`, the default): on this shared loopback every frame the server
  writes wakes a subscriber process, and a normally scheduled one preempts the server mid
  fan-out (70-420 times per write to 1,000, measured), which remote clients never do;
  `--policy other` measures it that way.

Phases, interleaved (repeat 1: every phase, repeat 2: ...), medians over `--repeats`:

1. latency (head): one connection plays `db::put("bench", "k<i>", #{i: <i>})` sequentially,
   another has `subscribe {topic: "records", collection: "bench"}`; per write: the play's round
   trip and the notification's arrival, both from the play's send. Target: notification p50
   within 2 ms of the play p50.
2. fanout (head): `--fanout-subscribers` (1,000) WebSockets on the one ASGI process, each
   subscribed; `--fanout-writes` plays of one db::put, `--fanout-interval` apart; per write the
   time from its send until the last subscriber has it. Target: p99 <= 100 ms. Also per write:
   how often the server's event loop was preempted, its minor page faults, and the subscribers'
   CPU per notification. `--fanout-warmup N` runs N rounds first, printed, left out of the figures.
3. rate (head-publish, channels): `--rate-subscribers` (100) subscribers; the publisher keeps at
   most `--window` changes published and not yet delivered to every subscriber (closed loop: no
   subscriber falls behind, nothing is dropped by either system), for `--seconds`. Reported:
   notifications/s delivered at the clients, and the ASGI process's CPU per notification.
   Target: ours >= 5x the Channels way's rate. Both are also given as notifications per
   CPU-second of the ASGI process (what one saturated process would do), which does not
   depend on the load generator keeping up on a shared machine.
4. puts (head, base): `--put-clients` (16) connections play one db::put each, sequentially,
   for `--seconds`. Target: head >= 0.8x base in plays/s.

    .venv/bin/python -m bench.live [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.helpers import (
    CLOCK_TICKS,
    REPO,
    BenchError,
    cpu_seconds,
    keep_logs,
    machine,
    named_key,
    percentile,
    raise_file_limit,
    source_revision,
    tree_cpu_seconds,
)
from bench.live_client import LeanSubscriber, key_in
from bench.play import export_commit, manage_in
from bench.ws_rpc import RATE_ENV, run_loop
from circles_client.keys import SigningKey
from tests.helpers.processes import PYTHON, ManagedProcess, free_port, server_env, wait_for_port
from tests.helpers.redis_server import RedisServer

OWNER = "bench-live-owner"  # every connection signs in as the circle's owner (remade by name in children)
COLLECTION = "bench"
BASE_COMMIT = "7875879"  # the last commit before the change log (f671a8d)
LATENCY_DELTA_TARGET_MS = 2.0
FANOUT_P99_TARGET_MS = 100.0
RATE_TARGET = 5.0
PUT_TARGET = 0.8
CALL_TIMEOUT = 10.0
OPTIONS: dict[str, Any] = {
    "compression": None,
    "ping_interval": None,
    "open_timeout": 60,
    "close_timeout": 5,
    "proxy": None,
    "max_queue": None,  # the reader never stops reading frames off the socket
}
PHASES = ("latency", "fanout", "rate", "puts")


# --- one client connection ----------------------------------------------------------------------


class Rpc:
    """One WebSocket: answers matched to requests by id, notifications handed to `on_notification`."""

    def __init__(
        self, ws: ClientConnection, on_notification: Callable[[dict[str, Any], float], None]
    ) -> None:
        self.ws = ws
        self.on_notification = on_notification
        self.next_id = 0
        self.pending: dict[int, asyncio.Future] = {}
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(
        cls,
        url: str,
        key: SigningKey | None,
        on_notification: Callable[[dict[str, Any], float], None] = lambda message, at: None,
    ) -> Rpc:
        rpc = cls(await connect(url, **OPTIONS), on_notification)
        if key is not None:
            nonce = await rpc.call("fetch_nonce", {"pubkey": key.pubkey})
            if (
                await rpc.call("authenticate", {"pubkey": key.pubkey, "signature": key.sign(nonce)})
                is not True
            ):
                raise BenchError("sign-in refused")
        return rpc

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                at = time.perf_counter()
                message = orjson.loads(frame)
                if "id" in message:
                    future = self.pending.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
                else:
                    self.on_notification(message, at)
        except Exception:  # closed abnormally: the requests still waiting fail below
            pass
        closed = ConnectionError(f"connection closed: {self.ws.close_code} {self.ws.close_reason}")
        for future in self.pending.values():
            if not future.done():
                future.set_exception(closed)
        self.pending.clear()

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send(
            orjson.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": self.next_id}).decode()
        )
        async with asyncio.timeout(CALL_TIMEOUT):
            response = await future
        if "result" not in response:
            raise BenchError(f"{method}: {response!r:.300}")
        return response["result"]

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self.reader, return_exceptions=True)


def put_script(key: str, i: int) -> str:
    return f'db::put("{COLLECTION}", "{key}", #{{i: {i}}})'


async def put(rpc: Rpc, key: str, i: int) -> None:
    result = await rpc.call("play", {"script": put_script(key, i)})
    if not isinstance(result, dict) or not isinstance(result.get("value"), int):
        raise BenchError(f"play answered {result!r:.300}")


SUBSCRIBE = {"topic": "records", "collection": COLLECTION}


# --- subscriber processes -----------------------------------------------------------------------


def subscriber_main(spec: dict[str, Any], counter: Any, pipe: Any) -> None:
    """A child process holding `spec["connections"]` subscribed WebSockets until told to stop."""
    if spec["policy"] == "batch":
        # A woken SCHED_BATCH process does not preempt the one running (the ASGI server, mid
        # fan-out): remote clients never would; on a shared loopback each frame could.
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    run_loop(_subscribers(spec, counter, pipe))


async def _subscribers(spec: dict[str, Any], counter: Any, pipe: Any) -> None:
    key = named_key(OWNER) if spec["sign_in"] else None
    record = spec["record"]
    last_arrival: dict[str, float] = {}
    counts: dict[str, int] = {}

    def on_notification(payload: bytes, at: float) -> None:
        counter.value += 1
        if record:
            name = key_in(payload)
            last_arrival[name] = at
            counts[name] = counts.get(name, 0) + 1

    opening = asyncio.Semaphore(spec["open_concurrency"])

    async def open_one() -> LeanSubscriber:
        async with opening:
            subscriber = await LeanSubscriber.open(spec["url"], on_notification)
            if key is not None:
                await subscriber.sign_in(key)
            await subscriber.subscribe(SUBSCRIBE)
            return subscriber

    loop = asyncio.get_running_loop()
    try:
        connections = await asyncio.gather(*(open_one() for _ in range(spec["connections"])))
    except BaseException as exc:
        pipe.send({"error": repr(exc)})
        return
    pipe.send("ready")
    await loop.run_in_executor(None, pipe.recv)  # "stop"
    closed_early = [s.close_code for s in connections if s.closed_early()]
    await asyncio.gather(*(s.close() for s in connections), return_exceptions=True)
    pipe.send({"last_arrival": last_arrival, "counts": counts, "closed_early": closed_early})


@dataclass
class Subscribers:
    """Subscriber child processes; `delivered` reads their notification counters."""

    processes: list[Any]
    pipes: list[Any]
    counters: list[Any]

    @classmethod
    def start(
        cls, url: str, total: int, processes: int, *, sign_in: bool, record: bool, policy: str = "other"
    ) -> Subscribers:
        context = multiprocessing.get_context("spawn")
        group = cls([], [], [])
        per = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
        for count in per:
            if not count:
                continue
            ours, theirs = context.Pipe()
            counter = context.Value("q", 0, lock=False)  # one writer: the child
            spec = {
                "url": url,
                "connections": count,
                "sign_in": sign_in,
                "record": record,
                "open_concurrency": 32,
                "policy": policy,
            }
            process = context.Process(target=subscriber_main, args=(spec, counter, theirs), daemon=True)
            process.start()
            group.processes.append(process)
            group.pipes.append(ours)
            group.counters.append(counter)
        try:
            for pipe in group.pipes:
                if not pipe.poll(300):
                    raise BenchError("subscribers did not get ready in 300 s")
                answer = pipe.recv()
                if answer != "ready":
                    raise BenchError(f"a subscriber process failed: {answer}")
        except BaseException:
            group.kill()
            raise
        return group

    def delivered(self) -> int:
        return sum(counter.value for counter in self.counters)

    def cpu(self) -> float:
        return sum(cpu_seconds(process.pid) for process in self.processes)

    def stop(self) -> list[dict[str, Any]]:
        for pipe in self.pipes:
            pipe.send("stop")
        results = [pipe.recv() if pipe.poll(60) else {"error": "no answer"} for pipe in self.pipes]
        for process in self.processes:
            process.join(30)
        self.kill()
        return results

    def kill(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()
                process.join(5)


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/`pid`/stat after the command name (None: the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def kernel_seconds(pid: int) -> float:
    """stime of process `pid` (all threads), seconds: the kernel's share (socket writes, TCP)."""
    fields = stat_fields(pid)
    return float("nan") if fields is None else int(fields[12]) / CLOCK_TICKS


def minor_faults(pid: int) -> int:
    """Minor page faults of process `pid` so far (fresh memory touched for the first time)."""
    fields = stat_fields(pid)
    return 0 if fields is None else int(fields[7])


def preemptions(pid: int) -> int:
    """How often the main thread of `pid` (the event loop) was switched out while it could run."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("nonvoluntary_ctxt"))


# --- systems ------------------------------------------------------------------------------------


@dataclass
class System:
    name: str
    url: str  # ws://host:port/<circle key>
    roles: dict[str, list[int]]  # role -> pids (asgi, workers)
    env: dict[str, str] = field(default_factory=dict)  # the server's environment (ours)
    processes: list[ManagedProcess] = field(default_factory=list)

    def cpu(self, role: str) -> float:
        return sum(tree_cpu_seconds(pid) for pid in self.roles.get(role, []))


def uvicorn(app: str, port: int) -> list[str]:
    return [
        PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--lifespan", "off",
    ]  # fmt: skip


def start_ours(
    name: str, args: argparse.Namespace, workdir: Path, database_url: str, redis_url: str, code_root: Path
) -> System:
    owner = named_key(OWNER)
    env = server_env(
        database_url,
        REDIS_URL=redis_url,
        CIRCLES_QUEUE_STREAM=f"bench-live:{name}:{uuid.uuid4().hex[:6]}",
        LOG_LEVEL="WARNING",
        CIRCLES_MAX_RUNS_PER_CALLER="0",  # every client is the owner: throughput, not one key's share
        CIRCLES_MAX_RUNS_PER_CIRCLE="0",
        **RATE_ENV,
    )
    env.update(item.split("=", 1) for item in args.ours_env)
    manage_in(code_root, env, "migrate", "--noinput", "-v0")
    manage_in(code_root, env, "create_circle", "--name", "bench", "--pubkey", owner.pubkey)
    system = System(name, "", {}, env)
    worker = ManagedProcess(
        [PYTHON, "manage.py", "rhai_worker", "--concurrency", str(args.workers)],
        env=env,
        log_path=workdir / f"{name}-worker.log",
        cwd=code_root,
    )
    system.processes.append(worker)
    port = free_port()
    argv = uvicorn("circleproject.asgi:application", port)
    if name == "head":  # the HTTP protocol circleproject.serve runs (base predates it)
        argv += ["--http", "circleproject.http_protocol:CirclesHttpProtocol"]
    argv += list(args.uvicorn_arg)
    if args.profile_asgi and name == "head":
        argv[1:3] = ["-m", "bench.profiled_asgi", str(args.profile_asgi.resolve())]
    elif args.trace_gc and name == "head":
        argv[1:3] = ["-m", "bench.gc_traced_asgi"]
    elif name == "head":  # the collector as circleproject.serve sets it (base predates the setting)
        argv[1:3] = ["-m", "bench.tuned_asgi"]
    server = ManagedProcess(
        argv,
        env=env,
        log_path=workdir / f"{name}-asgi.log",
        cwd=code_root,
    )
    system.processes.append(server)
    try:
        wait_for_port(port, server.process)
    except Exception:
        raise RuntimeError(f"{name} uvicorn did not start:\n{server.output()}") from None
    system.roles = {"asgi": [server.pid], "workers": [worker.pid]}
    system.url = f"ws://127.0.0.1:{port}/{owner.pubkey}"
    return system


def start_channels(workdir: Path, redis_url: str) -> System:
    env = {
        key: value
        for key, value in server_env("sqlite://", BENCH_REDIS_URL=redis_url).items()
        if key != "DJANGO_SETTINGS_MODULE"
    }
    port = free_port()
    server = ManagedProcess(
        uvicorn("bench.live_channels:application", port), env=env, log_path=workdir / "channels-asgi.log"
    )
    system = System("channels", f"ws://127.0.0.1:{port}/{named_key(OWNER).pubkey}", {}, env, [server])
    try:
        wait_for_port(port, server.process)
    except Exception:
        raise RuntimeError(f"channels uvicorn did not start:\n{server.output()}") from None
    system.roles = {"asgi": [server.pid]}
    return system


class Publisher:
    """A `bench.live_publish` child: `request(n)` asks for n more changes; `published` counts the done."""

    def __init__(self, mode: str, env: dict[str, str], log: Path, per_commit: int) -> None:
        argv = [PYTHON, "-m", "bench.live_publish", mode, "--circle-key", named_key(OWNER).pubkey]
        argv += ["--per-commit", str(per_commit)]
        self.log = open(log, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            argv, env=env, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        self.published = 0
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.ready.wait(120):
            self.stop()
            raise BenchError(f"the {mode} publisher did not get ready: {log.read_text()[-2000:]}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("ok "):
                self.published = int(line.split()[1])
            elif line.strip() == "ready":
                self.ready.set()

    def request(self, count: int) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.process.stdin is not None
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()


# --- phases -------------------------------------------------------------------------------------


async def latency_phase(system: System, args: argparse.Namespace, repeat: int) -> dict[str, Any]:
    owner = named_key(OWNER)
    waiting: dict[str, asyncio.Future] = {}

    def on_notification(message: dict[str, Any], at: float) -> None:
        change_key = message["params"]["result"]["key"]
        future = waiting.pop(change_key, None)
        if future is not None and not future.done():
            future.set_result(at)

    subscriber = await Rpc.open(system.url, owner, on_notification)
    writer = await Rpc.open(system.url, owner)
    plays, notes, after_answer = [], [], []
    try:
        await subscriber.call("subscribe", SUBSCRIBE)
        deadline = time.monotonic() + args.latency_seconds
        i = 0
        while i < args.latency_writes and time.monotonic() < deadline:
            i += 1
            change_key = f"l{repeat}-{i}"
            notified = waiting[change_key] = asyncio.get_running_loop().create_future()
            sent = time.perf_counter()
            await put(writer, change_key, i)
            answered = time.perf_counter()
            async with asyncio.timeout(CALL_TIMEOUT):
                arrived = await notified
            plays.append(1000 * (answered - sent))
            notes.append(1000 * (arrived - sent))
            after_answer.append(1000 * (arrived - answered))
    finally:
        await subscriber.close()
        await writer.close()
    return {
        "writes": len(plays),
        "play_p50_ms": percentile(plays, 0.5),
        "play_p99_ms": percentile(plays, 0.99),
        "notification_p50_ms": percentile(notes, 0.5),
        "notification_p99_ms": percentile(notes, 0.99),
        "after_answer_p50_ms": percentile(after_answer, 0.5),
        "delta_p50_ms": percentile(notes, 0.5) - percentile(plays, 0.5),
    }


def fanout_phase(system: System, args: argparse.Namespace, repeat: int) -> dict[str, Any]:
    opened = time.monotonic()
    subscribers = Subscribers.start(
        system.url, args.fanout_subscribers, args.processes, sign_in=True, record=True, policy=args.policy
    )
    open_seconds = time.monotonic() - opened
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    asgi = system.roles["asgi"][0]
    asgi_before, kernel_before, preempted_before = system.cpu("asgi"), kernel_seconds(asgi), preemptions(asgi)
    clients_before, faults_before = subscribers.cpu(), minor_faults(asgi)

    async def write() -> None:
        writer = await Rpc.open(system.url, named_key(OWNER))
        try:
            for i in range(1, args.fanout_writes + 1):
                change_key = f"f{repeat}-{i}"
                sent[change_key] = time.perf_counter()
                await put(writer, change_key, i)
                answered[change_key] = time.perf_counter()
                await asyncio.sleep(args.fanout_interval)
        finally:
            await writer.close()

    try:
        run_loop(write())
        expected = args.fanout_writes * args.fanout_subscribers
        deadline = time.monotonic() + 10
        while subscribers.delivered() < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        clients_cpu = subscribers.cpu() - clients_before
    finally:
        results = subscribers.stop()
    asgi_cpu = system.cpu("asgi") - asgi_before
    asgi_kernel = kernel_seconds(asgi) - kernel_before
    preempted = preemptions(asgi) - preempted_before
    faults = minor_faults(asgi) - faults_before
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise BenchError(f"fan-out subscribers failed: {errors}")
    to_last, missing, slowest = [], 0, (0.0, 0.0)
    for change_key, at in sent.items():
        last = max((r["last_arrival"].get(change_key, float("nan")) for r in results), default=float("nan"))
        got = sum(r["counts"].get(change_key, 0) for r in results)
        missing += args.fanout_subscribers - got
        if got == args.fanout_subscribers:
            to_last.append(1000 * (last - at))
            slowest = max(slowest, (to_last[-1], at))
    return {
        "subscribers": args.fanout_subscribers,
        "writes": len(sent),
        "open_and_subscribe_s": open_seconds,
        "to_last_p50_ms": percentile(to_last, 0.5),
        "to_last_p99_ms": percentile(to_last, 0.99),
        "to_last_max_ms": max(to_last, default=float("nan")),
        "to_last_ms": [round(value, 2) for value in to_last],
        "slowest_sent_at": slowest[1],  # perf_counter (CLOCK_MONOTONIC): matches --trace-gc's `at=`
        "missing_deliveries": missing,
        "closed_early": sum(len(r["closed_early"]) for r in results),
        "asgi_us_per_notification": 1e6 * asgi_cpu / max(1, len(sent) * args.fanout_subscribers - missing),
        "asgi_kernel_share": asgi_kernel / asgi_cpu if asgi_cpu else float("nan"),
        "asgi_preempted_per_write": preempted / max(1, len(sent)),
        "asgi_minor_faults_per_write": faults / max(1, len(sent)),
        "clients_us_per_notification": 1e6 * clients_cpu / max(1, len(sent) * args.fanout_subscribers),
    }


def rate_phase(system: System, mode: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    subscribers = Subscribers.start(
        system.url, args.rate_subscribers, args.processes, sign_in=mode == "ours", record=False
    )
    publisher = Publisher(mode, system.env, workdir / f"publisher-{mode}.log", args.per_commit)
    count = args.rate_subscribers
    requested = 0
    batch = max(1, args.window // 4)
    redis_pid = args.redis_pid

    def pump(until: float) -> None:
        nonlocal requested
        while time.monotonic() < until:
            if requested - subscribers.delivered() / count < args.window - batch:
                publisher.request(batch)
                requested += batch
            else:
                time.sleep(0.0005)

    try:
        pump(time.monotonic() + args.warmup)
        before = {
            "delivered": subscribers.delivered(),
            "published": publisher.published,
            "asgi": system.cpu("asgi"),
            "asgi_kernel": kernel_seconds(system.roles["asgi"][0]),
            "redis": cpu_seconds(redis_pid),
            "publisher": cpu_seconds(publisher.process.pid),
            "clients": subscribers.cpu(),
            "at": time.monotonic(),
        }
        pump(time.monotonic() + args.seconds)
        after = {
            "delivered": subscribers.delivered(),
            "published": publisher.published,
            "asgi": system.cpu("asgi"),
            "asgi_kernel": kernel_seconds(system.roles["asgi"][0]),
            "redis": cpu_seconds(redis_pid),
            "publisher": cpu_seconds(publisher.process.pid),
            "clients": subscribers.cpu(),
            "at": time.monotonic(),
        }
        deadline = time.monotonic() + 10  # drain: every requested change reaches every subscriber
        while subscribers.delivered() < requested * count and time.monotonic() < deadline:
            time.sleep(0.01)
        final = subscribers.delivered()
    finally:
        publisher.stop()
        results = subscribers.stop()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise BenchError(f"rate subscribers failed: {errors}")
    seconds = after["at"] - before["at"]
    delivered = after["delivered"] - before["delivered"]
    cpu = {role: after[role] - before[role] for role in ("asgi", "redis", "publisher", "clients")}
    asgi_kernel = after["asgi_kernel"] - before["asgi_kernel"]
    return {
        "subscribers": count,
        "seconds": seconds,
        "changes_per_s": (after["published"] - before["published"]) / seconds,
        "notifications": delivered,
        "notifications_per_s": delivered / seconds,
        "asgi_busy": cpu["asgi"] / seconds,
        "asgi_kernel_share": asgi_kernel / cpu["asgi"] if cpu["asgi"] else float("nan"),
        "us_per_notification": {role: 1e6 * value / max(1, delivered) for role, value in cpu.items()},
        "notifications_per_asgi_cpu_s": delivered / cpu["asgi"] if cpu["asgi"] else float("nan"),
        "lost": requested * count - final,
        "closed_early": sum(len(r["closed_early"]) for r in results),
    }


async def puts_phase(system: System, args: argparse.Namespace, repeat: int) -> dict[str, Any]:
    owner = named_key(OWNER)
    clients = await asyncio.gather(*(Rpc.open(system.url, owner) for _ in range(args.put_clients)))
    latencies: list[float] = []
    try:
        before = {role: system.cpu(role) for role in system.roles}

        async def loop(index: int, deadline: float) -> int:
            done = 0
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await put(clients[index], f"t{repeat}-{index}-{done}", done)
                latencies.append(1000 * (time.perf_counter() - started))
                done += 1
            return done

        started = time.monotonic()
        plays = sum(await asyncio.gather(*(loop(i, started + args.seconds) for i in range(args.put_clients))))
        seconds = time.monotonic() - started
        cpu = {role: system.cpu(role) - before[role] for role in system.roles}
    finally:
        await asyncio.gather(*(client.close() for client in clients))
    return {
        "clients": args.put_clients,
        "plays": plays,
        "plays_per_s": plays / seconds,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "us_per_play": {role: 1e6 * value / max(1, plays) for role, value in cpu.items()},
    }


async def wait_ready(system: System, timeout: float = 60.0) -> None:
    """Until one db::put play goes through (the worker takes a while to start)."""
    deadline = time.monotonic() + timeout
    while True:
        for process in system.processes:
            if not process.alive():
                raise RuntimeError(f"{system.name}: {process.argv[:4]} exited:\n{process.output()[-3000:]}")
        try:
            rpc = await Rpc.open(system.url, named_key(OWNER))
            try:
                await put(rpc, "ready", 0)
                return
            finally:
                await rpc.close()
        except (BenchError, OSError, TimeoutError, ConnectionError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{system.name} never answered: {exc!r}") from exc
        await asyncio.sleep(0.3)


# --- report -------------------------------------------------------------------------------------


def median_of(samples: list[dict[str, Any]], path: str) -> float:
    values = []
    for sample in samples:
        value: Any = sample
        for part in path.split("."):
            value = value[part]
        values.append(value)
    return statistics.median(values) if values else float("nan")


def summarise(samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    ratios: dict[str, dict[str, Any]] = {}
    latency = samples.get("latency/head", [])
    if latency:
        delta = median_of(latency, "notification_p50_ms") - median_of(latency, "play_p50_ms")
        ratios["notification p50 - play p50 (ms)"] = {
            "value": delta,
            "per_repeat": [s["delta_p50_ms"] for s in latency],
            "target": f"<= {LATENCY_DELTA_TARGET_MS}",
            "met": delta <= LATENCY_DELTA_TARGET_MS,
        }
    fanout = samples.get("fanout/head", [])
    if fanout:
        value = median_of(fanout, "to_last_p99_ms")
        ratios[f"fan-out to {fanout[0]['subscribers']}: p99 until the last (ms)"] = {
            "value": value,
            "per_repeat": [s["to_last_p99_ms"] for s in fanout],
            "target": f"<= {FANOUT_P99_TARGET_MS:.0f}",
            "met": value <= FANOUT_P99_TARGET_MS and all(s["missing_deliveries"] == 0 for s in fanout),
        }
    ours, theirs = samples.get("rate/head", []), samples.get("rate/channels", [])
    if ours and theirs:
        value = median_of(ours, "notifications_per_s") / median_of(theirs, "notifications_per_s")
        ratios["notifications/s, ours / Channels group_send"] = {
            "value": value,
            "per_repeat": [
                a["notifications_per_s"] / b["notifications_per_s"] for a, b in zip(ours, theirs, strict=True)
            ],
            "target": f">= {RATE_TARGET}",
            "met": value >= RATE_TARGET,
        }
        per_cpu = median_of(ours, "notifications_per_asgi_cpu_s") / median_of(
            theirs, "notifications_per_asgi_cpu_s"
        )
        ratios["notifications per ASGI CPU-second, ours / Channels"] = {
            "value": per_cpu,
            "per_repeat": [
                a["notifications_per_asgi_cpu_s"] / b["notifications_per_asgi_cpu_s"]
                for a, b in zip(ours, theirs, strict=True)
            ],
            "target": f">= {RATE_TARGET}",
            "met": per_cpu >= RATE_TARGET,
        }
    head, base = samples.get("puts/head", []), samples.get("puts/base", [])
    if head and base:
        value = median_of(head, "plays_per_s") / median_of(base, "plays_per_s")
        ratios["db::put plays/s, change log / without"] = {
            "value": value,
            "per_repeat": [a["plays_per_s"] / b["plays_per_s"] for a, b in zip(head, base, strict=True)],
            "target": f">= {PUT_TARGET}",
            "met": value >= PUT_TARGET,
        }
    return {"ratios": ratios}


def print_sample(name: str, repeat: int, repeats: int, sample: dict[str, Any]) -> None:
    phase = name.split("/")[0]
    prefix = f"  {repeat + 1}/{repeats} {name:<14}"
    if phase == "latency":
        line = (
            f"{sample['writes']:>5} writes  play p50 {sample['play_p50_ms']:.2f} "
            f"p99 {sample['play_p99_ms']:.2f}"
            f"  notification p50 {sample['notification_p50_ms']:.2f} p99 {sample['notification_p99_ms']:.2f}"
            f"  after answer p50 {sample['after_answer_p50_ms']:.2f} ms"
        )
    elif phase == "fanout":
        line = (
            f"{sample['writes']:>5} writes to {sample['subscribers']}  until last p50 "
            f"{sample['to_last_p50_ms']:.1f} p99 {sample['to_last_p99_ms']:.1f} "
            f"max {sample['to_last_max_ms']:.1f} ms"
            f"  missing {sample['missing_deliveries']}  closed {sample['closed_early']}"
            f"  asgi {sample['asgi_us_per_notification']:.0f} µs/notif"
            f" ({sample['asgi_kernel_share']:.0%} kernel)"
            f"  per write: preempted {sample['asgi_preempted_per_write']:.0f}"
            f" faults {sample['asgi_minor_faults_per_write']:.0f}"
            f"  clients {sample['clients_us_per_notification']:.0f} µs/notif"
            f"  (opened in {sample['open_and_subscribe_s']:.1f} s)"
        )
    elif phase == "rate":
        cpu = sample["us_per_notification"]
        line = (
            f"{sample['notifications_per_s']:>8.0f} notif/s ({sample['changes_per_s']:.0f} changes/s to "
            f"{sample['subscribers']})  asgi busy {sample['asgi_busy']:.0%}  µs/notif asgi {cpu['asgi']:.1f} "
            f"({sample['asgi_kernel_share']:.0%} kernel) "
            f"redis {cpu['redis']:.1f} publisher {cpu['publisher']:.1f} clients {cpu['clients']:.1f}"
            f"  lost {sample['lost']}  closed {sample['closed_early']}"
        )
    else:
        cpu = " ".join(f"{role} {value:.0f}" for role, value in sample["us_per_play"].items())
        line = (
            f"{sample['plays']:>6} plays {sample['plays_per_s']:>6.0f}/s p50 {sample['p50_ms']:.2f} "
            f"p99 {sample['p99_ms']:.2f} ms  µs/play: {cpu}"
        )
    print(prefix + line, flush=True)


def print_report(summary: dict[str, Any]) -> None:
    print()
    for name, ratio in summary["ratios"].items():
        per_repeat = ", ".join(f"{r:.2f}" for r in ratio["per_repeat"])
        verdict = "MET" if ratio["met"] else "MISSED"
        print(
            f"{name:<52} {ratio['value']:8.2f}   target {ratio['target']:<7} {verdict:<7} "
            f"per repeat: {per_repeat}"
        )


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {PHASES}")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (medians reported)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of a rate or puts measurement")
    parser.add_argument("--warmup", type=float, default=1.0, help="rate phase: seconds before measuring")
    parser.add_argument("--latency-writes", type=int, default=300, help="latency phase: sequential writes")
    parser.add_argument("--latency-seconds", type=float, default=3.0, help="latency phase: time bound")
    parser.add_argument("--fanout-subscribers", type=int, default=1000)
    parser.add_argument("--fanout-writes", type=int, default=50)
    parser.add_argument("--fanout-interval", type=float, default=0.1, help="seconds between fan-out writes")
    parser.add_argument(
        "--fanout-warmup",
        type=int,
        default=0,
        help="fan-out rounds run (and printed) before the repeats, left out of the figures",
    )
    parser.add_argument("--rate-subscribers", type=int, default=100)
    parser.add_argument(
        "--window", type=int, default=80, help="rate phase: most changes published but not yet everywhere"
    )
    parser.add_argument(
        "--per-commit", type=int, default=10, help="rate phase: changes per transaction of our publisher"
    )
    parser.add_argument("--put-clients", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2, help="subscriber processes of the load generator")
    parser.add_argument(
        "--policy",
        choices=("other", "batch"),
        default="batch",
        help="the subscriber processes' scheduling policy (batch: their wake-ups preempt nothing)",
    )
    parser.add_argument("--workers", type=int, default=1, help="rhai_worker --concurrency of ours and base")
    parser.add_argument("--base-commit", default=BASE_COMMIT, help="the tree without the change log")
    parser.add_argument("--postgres", action="store_true", help="a private PostgreSQL instead of SQLite")
    parser.add_argument("--json", type=Path, help="also write the samples and ratios here")
    parser.add_argument("--keep-logs", type=Path, help="copy the process logs into this directory")
    parser.add_argument(
        "--ours-env", action="append", default=[], metavar="KEY=VALUE", help="extra env for head and base"
    )
    parser.add_argument(
        "--uvicorn-arg", action="append", default=[], help="extra uvicorn argument for head and base"
    )
    parser.add_argument(
        "--trace-gc", action="store_true", help="log head's garbage collections over 2 ms (its log)"
    )
    parser.add_argument(
        "--profile-asgi", type=Path, help="run head's uvicorn under cProfile, writing the stats here"
    )
    args = parser.parse_args(argv)
    args.phase_names = [p.strip() for p in args.phases.split(",") if p.strip()]
    if any(p not in PHASES for p in args.phase_names):
        parser.error(f"phases are {PHASES}")
    if any("=" not in item for item in args.ours_env):
        parser.error("--ours-env takes KEY=VALUE")
    counts = (args.repeats, args.latency_writes, args.fanout_subscribers, args.fanout_writes)
    if min(*counts, args.rate_subscribers, args.window, args.put_clients, args.processes, args.workers) < 1:
        parser.error("counts must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit = raise_file_limit(4 * args.fanout_subscribers + 1024)
    samples: dict[str, list[dict[str, Any]]] = {}
    systems: dict[str, System] = {}
    wall = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp:
        workdir = Path(tmp)
        redis_server = RedisServer(workdir, persist=False)
        postgres = None
        try:
            redis_server.start()
            assert redis_server.process is not None
            args.redis_pid = redis_server.process.pid
            redis_url = f"redis://127.0.0.1:{redis_server.port}"
            if args.postgres:
                from tests.helpers.postgres_server import PostgresServer

                postgres = PostgresServer()
                postgres.start()

            def database(name: str) -> str:
                if postgres is not None:
                    return postgres.create_database(f"live_{name}")
                return f"sqlite:///{workdir / f'{name}.sqlite3'}"

            systems["head"] = start_ours("head", args, workdir, database("head"), f"{redis_url}/0", REPO)
            if "puts" in args.phase_names:
                code = export_commit(args.base_commit, workdir / "base-code")
                systems["base"] = start_ours("base", args, workdir, database("base"), f"{redis_url}/0", code)
            if "rate" in args.phase_names:
                systems["channels"] = start_channels(workdir, f"{redis_url}/3")
            for name in ("head", "base"):
                if name in systems:
                    run_loop(wait_ready(systems[name]))
            print(
                "processes: "
                + "; ".join(f"{s.name} {s.roles}" for s in systems.values())
                + f"; redis {args.redis_pid}; open-files limit {limit[0]}",
                flush=True,
            )
            plan: list[tuple[str, Callable[[int], dict[str, Any]]]] = []
            if "latency" in args.phase_names:
                plan.append(("latency/head", lambda r: run_loop(latency_phase(systems["head"], args, r))))
            if "fanout" in args.phase_names:
                plan.append(("fanout/head", lambda r: fanout_phase(systems["head"], args, r)))
            if "rate" in args.phase_names:
                plan.append(("rate/head", lambda r: rate_phase(systems["head"], "ours", args, workdir)))
                plan.append(
                    ("rate/channels", lambda r: rate_phase(systems["channels"], "channels", args, workdir))
                )
            if "puts" in args.phase_names:
                plan.append(("puts/head", lambda r: run_loop(puts_phase(systems["head"], args, r))))
                plan.append(("puts/base", lambda r: run_loop(puts_phase(systems["base"], args, r))))
            if "fanout" in args.phase_names:
                for round_ in range(args.fanout_warmup):
                    sample = fanout_phase(systems["head"], args, -1 - round_)
                    samples.setdefault("fanout/warm-up", []).append(sample)
                    print_sample("fanout/warm-up", round_, args.fanout_warmup, sample)
            for repeat in range(args.repeats):
                for name, run in plan:
                    sample = run(repeat)
                    samples.setdefault(name, []).append(sample)
                    print_sample(name, repeat, args.repeats, sample)
        finally:
            if args.profile_asgi and "head" in systems:
                systems["head"].processes[-1].signal(signal.SIGUSR1)
                time.sleep(3)
            for system in systems.values():
                for process in reversed(system.processes):
                    process.stop()
            redis_server.stop()
            if postgres is not None:
                postgres.stop()
            keep_logs(workdir, args.keep_logs)
    summary = summarise(samples)
    print_report(summary)
    print(
        f"\nwall time {time.monotonic() - wall:.0f} s, load average at the end {machine()['loadavg_at_end']}"
    )
    if args.json:
        document = {
            "command": " ".join([Path(sys.executable).name, "-m", "bench.live", *(argv or sys.argv[1:])]),
            "machine": machine(),
            "source": source_revision("circles", "circleproject", "executor", "auth_secp"),
            "settings": {
                key: value
                for key, value in vars(args).items()
                if key not in ("json", "keep_logs", "phase_names", "redis_pid")
            },
            "samples": samples,
            **summary,
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
