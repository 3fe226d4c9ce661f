"""Reconnect-storm benchmark: N signed-in clients, the ASGI processes restarted, every client back.

    .venv/bin/python -m bench.reconnect [--clients 10000] [--workers 2] [--redis] [--json out.json]

What runs, all on loopback, all stopped at the end:

* the production entry point, `python -m circleproject.serve --workers N` (a supervisor and N
  server processes on one socket), in embedded mode (SQLite, in-memory channel layer) or with
  `--redis` (a private `redis-server` without persistence as REDIS_URL; SQLite, or a private
  PostgreSQL with `--postgres`), LOG_LEVEL=WARNING;
* one circle whose members are the N clients (`manage.py load_circles`), each client its own key;
* `--generators` load-generator processes (multiprocessing), each holding its share of the
  clients as raw `websockets` connections, signing in the way `circles_client` does
  (`fetch_nonce` + `authenticate`), or with `--sign-in url` by `GET /auth/nonce` and the
  sign-in in the WebSocket URL (confirmed by one `whoami`).

The shipped per-address limits stay in force: client `i` connects from its own loopback address,
127.0.0.2 upwards, `--clients-per-address` clients to each (Linux routes all of 127/8 to `lo`),
so the initial sign-in and the storm's together stay under `CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE`
(60), `CIRCLES_AUTH_NONCES_PER_ADDRESS_PER_MINUTE` (30) and `CIRCLES_MAX_CONNECTIONS_PER_ADDRESS`
(64).

The storm: once every client is signed in, the supervisor gets SIGTERM (its processes drain: close
1001), the benchmark waits for it to exit and starts it again on the same port. Every client
notices its close and reconnects with full-jitter exponential backoff (`circles_client.backoff`,
the client library's defaults: 0.25 s doubling to 10 s), signing in again, until it is back or
`--storm-timeout` passes.

Reported: seconds from the SIGTERM until all are back (and the down time inside it), p50/p99 of
each client's time from its close to being signed in again, sign-ins per second during the storm
(overall and the peak second), failed attempts by cause (while the server was down and after it
listened again) and clients that never came back, server CPU seconds of the storm (the old
processes' drain plus the new ones' start and sign-ins), the load generators' CPU, and how busy
the machine was.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import errno
import json
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bench.helpers import (
    keep_logs,
    machine,
    named_key,
    percentile,
    raise_file_limit,
    source_revision,
    tree_cpu_seconds,
)
from circles_client.backoff import Backoff
from circles_client.keys import SigningKey
from tests.helpers.processes import (
    PYTHON,
    ManagedProcess,
    free_port,
    manage,
    server_env,
    wait_for_port,
)
from tests.helpers.redis_server import RedisServer

CLIENT_KEY_PREFIX = "bench-reconnect-client"
OWNER_KEY_NAME = "bench-reconnect-owner"
# Per-client bound on how long the first sign-ins may take, all together.
INITIAL_TIMEOUT = 600.0


# --- what a load generator is told and answers --------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Everything a load-generator process needs (picklable)."""

    host: str
    port: int
    circle: str
    sign_in: str  # "rpc": fetch_nonce + authenticate; "url": GET /auth/nonce + sign-in in the URL
    clients_per_address: int
    backoff_base: float
    backoff_cap: float
    open_timeout: float
    request_timeout: float
    initial_concurrency: int


@dataclass
class ClientRecord:
    """One client's storm: when it lost its connection, how, and when it was back."""

    number: int
    lost_at: float | None = None  # time.monotonic() (one clock for every process on Linux)
    close: str = ""
    back_at: float | None = None
    attempts: int = 0
    failures: list[tuple[float, str]] = field(default_factory=list)  # (attempt's start, cause) per failure


def loopback_address(number: int, per_address: int) -> str:
    """The local address client `number` connects from: 127.0.0.2 upwards, `per_address` clients each."""
    index = 1 + number // per_address  # 0 would be 127.0.0.1, left to the benchmark itself
    return f"127.{index // (254 * 256)}.{(index // 254) % 256}.{index % 254 + 1}"


def client_key(number: int) -> SigningKey:
    return named_key(f"{CLIENT_KEY_PREFIX}-{number}")


class SignInFailed(Exception):
    """A sign-in attempt that did not end signed in; the message is its cause, for counting."""


@contextlib.contextmanager
def timing_out_as(phase: str) -> Iterator[None]:
    """A timeout inside the block counts as "timed out (`phase`)": which step never finished."""
    try:
        yield
    except TimeoutError as exc:
        raise SignInFailed(f"timed out ({phase})") from exc


def failure_cause(exc: BaseException) -> str:
    """A short, countable name for why an attempt failed."""
    if isinstance(exc, SignInFailed):
        return str(exc)
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code} at the handshake"
    if isinstance(exc, ConnectionClosed):
        close = exc.rcvd
        return f"closed {close.code} {close.reason}".strip() if close else "closed without a close frame"
    if isinstance(exc, InvalidHandshake):
        return f"handshake failed ({type(exc).__name__})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno:
        return f"{errno.errorcode.get(exc.errno, exc.errno)} ({exc.strerror})"
    return type(exc).__name__


# --- one client ---------------------------------------------------------------------------


class StormClient:
    """One member: signs in, holds its connection, and after a drop comes back with backoff."""

    def __init__(self, number: int, plan: Plan) -> None:
        self.plan = plan
        self.key = client_key(number)
        self.pubkey = self.key.pubkey
        self.local_address = loopback_address(number, plan.clients_per_address)
        self.url = f"ws://{plan.host}:{plan.port}/{plan.circle}"
        self.record = ClientRecord(number)
        self.ws: ClientConnection | None = None
        self.ids = 0

    async def call(self, ws: ClientConnection, method: str, params: dict[str, Any] | None = None) -> Any:
        self.ids += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": self.ids}
        if params is not None:
            message["params"] = params
        await ws.send(orjson.dumps(message).decode())
        with timing_out_as(method):
            async with asyncio.timeout(self.plan.request_timeout):
                response = orjson.loads(await ws.recv(decode=False))
        if "error" in response:
            raise SignInFailed(f"{method} answered {response['error'].get('code')}")
        return response.get("result")

    async def http_nonce(self) -> str:
        """`GET /auth/nonce` for this key and circle, from this client's address."""
        # Bounded like the WebSocket's opening: unbounded, a connect whose SYN the server's full
        # accept queue dropped waits out the kernel's SYN retries (over two minutes).
        with timing_out_as("nonce connect"):
            async with asyncio.timeout(self.plan.open_timeout):
                reader, writer = await asyncio.open_connection(
                    self.plan.host, self.plan.port, local_addr=(self.local_address, 0)
                )
        try:
            path = f"/auth/nonce?public_key={self.pubkey}&circle={self.plan.circle}"
            request = f"GET {path} HTTP/1.1\r\nHost: {self.plan.host}\r\nConnection: close\r\n\r\n"
            writer.write(request.encode())
            with timing_out_as("nonce answer"):
                async with asyncio.timeout(self.plan.request_timeout):
                    response = await reader.read()
        finally:
            writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1:2]
        if status != [b"200"]:
            raise SignInFailed(f"/auth/nonce answered HTTP {status[0].decode() if status else '?'}")
        return orjson.loads(body)["nonce"]

    async def _open(self, url: str) -> ClientConnection:
        return await connect(
            url,
            local_addr=(self.local_address, 0),
            open_timeout=self.plan.open_timeout,
            ping_interval=None,  # the server pings (uvicorn, every 20 s); websockets answers
            close_timeout=5,
            compression=None,  # as circles_client connects
            max_size=None,
            proxy=None,
        )

    async def sign_in(self) -> ClientConnection:
        """One attempt: connect and sign in; the open connection, or an exception naming the cause."""
        url = self.url
        if self.plan.sign_in == "url":
            text = await self.http_nonce()
            url += f"?pubkey={self.pubkey}&sig={self.key.sign(text)}&nonce={quote(text)}"
        with timing_out_as("WebSocket open"):
            ws = await self._open(url)
        try:
            if self.plan.sign_in == "url":
                whoami = await self.call(ws, "whoami")
                if not whoami.get("authenticated"):
                    raise SignInFailed("URL sign-in not signed in")
            else:
                text = await self.call(ws, "fetch_nonce", {"pubkey": self.pubkey})
                params = {"pubkey": self.pubkey, "signature": self.key.sign(text)}
                ok = await self.call(ws, "authenticate", params)
                if ok is not True:
                    raise SignInFailed(f"authenticate answered {ok!r}")
        except BaseException:
            await ws.close()
            raise
        return ws

    async def come_back(self, rng: random.Random, backoff: Backoff, deadline: float) -> bool:
        """Attempt sign-ins with jittered backoff (the first one waits too) until one works or `deadline`."""
        attempt = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(min(backoff.delay(attempt, rng), max(0.0, deadline - time.monotonic())))
            attempt += 1
            self.record.attempts += 1
            started = time.monotonic()
            try:
                self.ws = await self.sign_in()
                return True
            except Exception as exc:  # every failure is counted by cause and retried
                self.record.failures.append((started, failure_cause(exc)))
        return False

    async def hold(self) -> None:
        """Wait for the connection to drop; note when and with which close."""
        assert self.ws is not None
        await self.ws.wait_closed()
        self.record.lost_at = time.monotonic()
        self.record.close = f"{self.ws.close_code} {self.ws.close_reason or ''}".strip()


# --- one load-generator process -----------------------------------------------------------


async def loop_lag(lags: list[float], interval: float = 0.1) -> None:
    """Append how late each `interval` sleep wakes up: how far behind this event loop runs."""
    while True:
        before = time.monotonic()
        await asyncio.sleep(interval)
        lags.append(time.monotonic() - before - interval)


async def run_generator(numbers: list[int], plan: Plan, pipe: Pipe) -> None:
    """Sign in `numbers`, report ready, then live through the storm and report every record."""
    loop = asyncio.get_running_loop()
    rng = random.Random(numbers[0] if numbers else 0)
    backoff = Backoff(plan.backoff_base, plan.backoff_cap)
    clients = [StormClient(number, plan) for number in numbers]
    gate = asyncio.Semaphore(plan.initial_concurrency)
    initial_failures: collections.Counter[str] = collections.Counter()

    async def first_sign_in(client: StormClient) -> bool:
        async with gate:
            signed_in = await client.come_back(rng, Backoff(0.05, 2.0), time.monotonic() + INITIAL_TIMEOUT)
        for _, cause in client.record.failures:
            initial_failures[cause] += 1
        client.record = ClientRecord(client.record.number)
        return signed_in

    cpu_start = time.process_time()
    signed_in = await asyncio.gather(*(first_sign_in(client) for client in clients))
    holders = {
        client: asyncio.ensure_future(client.hold())
        for client, ok in zip(clients, signed_in, strict=True)
        if ok
    }
    pipe.send(("ready", sum(signed_in), dict(initial_failures), time.process_time() - cpu_start))

    deadline = await loop.run_in_executor(None, pipe.recv)  # the storm's end, monotonic
    cpu_storm = time.process_time()
    lags: list[float] = []
    lag_monitor = asyncio.ensure_future(loop_lag(lags))

    async def storm(client: StormClient, holder: asyncio.Future) -> None:
        await holder
        if await client.come_back(rng, backoff, deadline):
            client.record.back_at = time.monotonic()

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, deadline - time.monotonic()) + 5):
            await asyncio.gather(*(storm(client, holder) for client, holder in holders.items()))
    lag_monitor.cancel()
    records = [asdict(client.record) for client in holders]
    pipe.send(("storm", records, time.process_time() - cpu_storm, lags))

    await loop.run_in_executor(None, pipe.recv)  # "close"
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            await asyncio.gather(
                *(client.ws.close() for client in clients if client.ws is not None), return_exceptions=True
            )
    pipe.send(("closed",))


def generator_process(numbers: list[int], plan: Plan, pipe: Pipe) -> None:
    """Entry point of a load-generator process (uvloop when installed)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    try:
        import uvloop
    except ImportError:
        asyncio.run(run_generator(numbers, plan, pipe))
    else:
        uvloop.run(run_generator(numbers, plan, pipe))


# --- the server under test ----------------------------------------------------------------


@dataclass
class Deployment:
    """The database, Redis when asked, and the command that (re)starts the ASGI processes."""

    workdir: Path
    env: dict[str, str]
    port: int
    workers: int
    circle: str
    redis: RedisServer | None = None
    postgres: Any = None
    server: ManagedProcess | None = None
    starts: int = 0

    def start_server(self) -> ManagedProcess:
        self.starts += 1
        argv = [PYTHON, "-m", "circleproject.serve", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--workers", str(self.workers)]
        log = self.workdir / f"serve-{self.starts}.log"
        self.server = ManagedProcess(argv, env=self.env, log_path=log)
        wait_for_port(self.port, self.server.process, timeout=60)
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(timeout=30)
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()


def members_file(workdir: Path, owner: SigningKey, clients: int) -> Path:
    members = [{"key": client_key(number).pubkey, "role": "member"} for number in range(clients)]
    path = workdir / "circles.json"
    circle = {"name": "reconnect-bench", "pubkey": owner.pubkey, "members": members}
    path.write_text(json.dumps({"circles": [circle]}))
    return path


def deploy(args: argparse.Namespace, workdir: Path) -> Deployment:
    """Prepare the database (one circle, the clients as members) and Redis; start nothing else yet."""
    owner = named_key(OWNER_KEY_NAME)
    redis_server = postgres = None
    extra = {"LOG_LEVEL": "WARNING"}
    if args.redis:
        (workdir / "redis").mkdir()
        redis_server = RedisServer(workdir / "redis", persist=False)
        redis_server.start()
        extra |= {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"reconnect:{os.getpid()}"}
    if args.postgres:
        from tests.helpers.postgres_server import PostgresServer

        postgres = PostgresServer()
        postgres.start()
        database_url = postgres.create_database("reconnect")
    else:
        database_url = f"sqlite:///{workdir / 'circles.sqlite3'}"
    extra |= dict(item.split("=", 1) for item in args.server_env)
    env = server_env(database_url, **extra)
    deployment = Deployment(workdir, env, free_port(), args.workers, owner.pubkey, redis_server, postgres)
    try:
        manage(env, "migrate", "--noinput", "-v0")
        # 10,000 members take minutes on a busy machine.
        done = manage(env, "load_circles", str(members_file(workdir, owner, args.clients)), timeout=900)
        if "reconnect-bench" not in done.stdout:
            raise RuntimeError(f"load_circles: {done.stdout}{done.stderr}")
    except BaseException:
        deployment.stop()  # a failed setup leaves no redis-server or PostgreSQL behind
        raise
    return deployment


def stop_and_reap(server: ManagedProcess, timeout: float) -> float:
    """SIGTERM the supervisor, wait for it, and return its CPU seconds with its reaped processes.

    `os.wait4` gives the rusage of the supervisor and of every server process it waited for,
    which /proc cannot show once they are gone.
    """
    server.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(server.pid, os.WNOHANG)
        if pid:
            server.process.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            os.killpg(server.pid, signal.SIGKILL)
            _, status, usage = os.wait4(server.pid, 0)
            server.process.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        time.sleep(0.01)


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


# --- the run ------------------------------------------------------------------------------


@dataclass
class Generators:
    processes: list[multiprocessing.Process]
    pipes: list[Pipe]

    def gather(self, kind: str, timeout: float) -> list[tuple]:
        answers = []
        deadline = time.monotonic() + timeout
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            while not pipe.poll(0.5):
                if not process.is_alive():
                    raise RuntimeError(f"load generator {process.pid} died (exit {process.exitcode})")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"load generator {process.pid}: no {kind!r} in {timeout:.0f}s")
            answer = pipe.recv()
            if answer[0] != kind:
                raise RuntimeError(f"load generator {process.pid} sent {answer[0]!r}, expected {kind!r}")
            answers.append(answer)
        return answers

    def send(self, message: Any) -> None:
        for pipe in self.pipes:
            pipe.send(message)

    def stop(self) -> None:
        for process in self.processes:
            process.join(15)
            if process.is_alive():
                process.kill()
                process.join(5)


def start_generators(args: argparse.Namespace, deployment: Deployment) -> Generators:
    plan = Plan(
        host="127.0.0.1",
        port=deployment.port,
        circle=deployment.circle,
        sign_in=args.sign_in,
        clients_per_address=args.clients_per_address,
        backoff_base=args.backoff_base,
        backoff_cap=args.backoff_cap,
        open_timeout=args.open_timeout,
        request_timeout=args.request_timeout,
        initial_concurrency=max(1, args.initial_concurrency // args.generators),
    )
    context = multiprocessing.get_context("spawn")
    processes, pipes = [], []
    for index in range(args.generators):
        ours, theirs = context.Pipe()
        numbers = list(range(index, args.clients, args.generators))
        process = context.Process(target=generator_process, args=(numbers, plan, theirs), daemon=True)
        process.start()
        processes.append(process)
        pipes.append(ours)
    return Generators(processes, pipes)


def storm_figures(
    records: list[dict[str, Any]], sigterm_at: float, exited_at: float, listening_at: float, clients: int
) -> dict[str, Any]:
    """The storm's times, rates and failures from every client's record."""
    back = [r for r in records if r["back_at"] is not None]
    back_times = sorted(r["back_at"] for r in back)
    per_client = [r["back_at"] - r["lost_at"] for r in back]
    lost_times = [r["lost_at"] for r in records if r["lost_at"] is not None]
    down, after = collections.Counter(), collections.Counter()
    spans: dict[str, list[float]] = {}  # cause -> [first, last] attempt start, after the SIGTERM
    for record in records:
        for when, cause in record["failures"]:
            (down if when < listening_at else after)[cause] += 1
            span = spans.setdefault(cause, [when, when])
            span[0], span[1] = min(span[0], when), max(span[1], when)
    seconds = collections.Counter(int(t - listening_at) for t in back_times)
    all_back = back_times[-1] - sigterm_at if back and len(back) == clients else None
    return {
        "clients_in_storm": len(records),
        "clients_back": len(back),
        "clients_not_back": clients - len(back),
        "all_back_after_sigterm_s": round(all_back, 2) if all_back is not None else None,
        "last_back_after_sigterm_s": round(back_times[-1] - sigterm_at, 2) if back else None,
        "all_back_after_listening_s": round(back_times[-1] - listening_at, 2) if back else None,
        "drain_s": round(exited_at - sigterm_at, 2),
        "down_s": round(listening_at - sigterm_at, 2),
        "first_close_after_sigterm_s": round(min(lost_times) - sigterm_at, 2) if lost_times else None,
        "last_close_after_sigterm_s": round(max(lost_times) - sigterm_at, 2) if lost_times else None,
        "closes": dict(collections.Counter(r["close"] for r in records)),
        "time_to_back_s": {
            "p50": round(percentile(per_client, 0.5), 2),
            "p90": round(percentile(per_client, 0.9), 2),
            "p99": round(percentile(per_client, 0.99), 2),
            "max": round(max(per_client), 2) if per_client else None,
        },
        "sign_ins_per_s": round(len(back) / (back_times[-1] - listening_at), 1) if back else 0.0,
        "peak_sign_ins_in_one_second": max(seconds.values()) if seconds else 0,
        "sign_ins_per_second_after_listening": [seconds.get(s, 0) for s in range(max(seconds) + 1)]
        if seconds
        else [],
        "attempts": sum(r["attempts"] for r in records),
        "failed_attempts_while_down": dict(down.most_common()),
        "failed_attempts_after_listening": dict(after.most_common()),
        "failure_causes_seen_after_sigterm_s": {
            cause: [round(first - sigterm_at, 1), round(last - sigterm_at, 1)]
            for cause, (first, last) in sorted(spans.items())
        },
        "dropped_before_sigterm": sum(1 for t in lost_times if t < sigterm_at),
    }


def run(args: argparse.Namespace, deployment: Deployment) -> dict[str, Any]:
    generators = start_generators(args, deployment)
    try:
        server = deployment.start_server()
        started = time.monotonic()
        ready = generators.gather("ready", INITIAL_TIMEOUT + 60)
        signed_in = sum(answer[1] for answer in ready)
        initial = {
            "signed_in": signed_in,
            "seconds": round(time.monotonic() - started, 1),
            "failed_attempts": dict(sum((collections.Counter(a[2]) for a in ready), collections.Counter())),
            "generator_cpu_s": round(sum(a[3] for a in ready), 1),
        }
        print(f"{signed_in} of {args.clients} clients signed in in {initial['seconds']}s", flush=True)
        time.sleep(args.settle)
        busy_before = machine_busy_ticks()
        old_cpu_before = tree_cpu_seconds(server.pid)
        sigterm_at = time.monotonic()
        generators.send(sigterm_at + args.storm_timeout)
        old_cpu_total = stop_and_reap(server, timeout=60)
        exited_at = time.monotonic()
        print(f"old server exited {exited_at - sigterm_at:.2f}s after SIGTERM", flush=True)
        server = deployment.start_server()
        listening_at = time.monotonic()
        new_cpu_at_listening = tree_cpu_seconds(server.pid)
        print(f"new server listening {listening_at - sigterm_at:.2f}s after SIGTERM", flush=True)
        storm = generators.gather("storm", args.storm_timeout + 60)
        new_cpu = tree_cpu_seconds(server.pid)
        busy_after = machine_busy_ticks()
        records = [record for answer in storm for record in answer[1]]
        figures = storm_figures(records, sigterm_at, exited_at, listening_at, signed_in)
        cpu = {
            "old_processes_drain": round(old_cpu_total - old_cpu_before, 2),
            "new_processes_start": round(new_cpu_at_listening, 2),
            "new_processes_until_all_back": round(new_cpu, 2),
        }
        cpu["storm_total"] = round(cpu["old_processes_drain"] + cpu["new_processes_until_all_back"], 2)
        if figures["clients_back"]:
            cpu["ms_per_sign_in_after_start"] = round(
                1000 * (new_cpu - new_cpu_at_listening) / figures["clients_back"], 2
            )
        ticks = busy_after[1] - busy_before[1]
        generators.send("close")
        generators.gather("closed", 60)
    finally:
        generators.stop()
    return {
        "initial": initial,
        "storm": figures,
        "server_cpu_s": cpu,
        "generator_cpu_s_storm": round(sum(a[2] for a in storm), 1),
        "generator_loop_lag_s": [
            {
                "p50": round(percentile(a[3], 0.5), 3),
                "p99": round(percentile(a[3], 0.99), 3),
                "max": round(max(a[3]), 3),
            }
            for a in storm
            if a[3]
        ],
        "machine_busy_during_storm": round((busy_after[0] - busy_before[0]) / ticks, 2) if ticks else None,
        "server_log_tracebacks": sum(
            log.read_text(errors="replace").count("Traceback")
            for log in deployment.workdir.glob("serve-*.log")
        ),
    }


def print_report(result: dict[str, Any]) -> None:
    storm, cpu = result["storm"], result["server_cpu_s"]
    print()
    print(f"clients signed in before the restart: {result['initial']['signed_in']}")
    print(
        f"all back {storm['all_back_after_sigterm_s']}s after SIGTERM "
        f"(drain {storm['drain_s']}s, down {storm['down_s']}s, then {storm['all_back_after_listening_s']}s); "
        f"not back: {storm['clients_not_back']}"
    )
    times = storm["time_to_back_s"]
    print(f"per-client close -> signed in again: p50 {times['p50']}s p99 {times['p99']}s max {times['max']}s")
    print(
        f"sign-ins per second after listening: {storm['sign_ins_per_s']} overall, "
        f"peak {storm['peak_sign_ins_in_one_second']} in one second"
    )
    print(f"failed attempts while down: {storm['failed_attempts_while_down']}")
    print(f"failed attempts after listening: {storm['failed_attempts_after_listening']}")
    print(f"server CPU seconds: {cpu}")
    print(f"load generators' event-loop lag in the storm: {result['generator_loop_lag_s']}")
    print(
        f"load generators' CPU in the storm: {result['generator_cpu_s_storm']}s; "
        f"machine busy: {result['machine_busy_during_storm']:.0%}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000, help="signed-in clients")
    parser.add_argument("--workers", type=int, default=2, help="circleproject.serve --workers")
    parser.add_argument("--redis", action="store_true", help="Redis mode (a private redis-server)")
    parser.add_argument("--postgres", action="store_true", help="a private PostgreSQL instead of SQLite")
    parser.add_argument(
        "--sign-in",
        choices=("rpc", "url"),
        default="rpc",
        help="rpc: fetch_nonce + authenticate (as circles_client); url: GET /auth/nonce + sign-in in the URL",
    )
    parser.add_argument("--generators", type=int, default=2, help="load-generator processes")
    parser.add_argument(
        "--clients-per-address", type=int, default=10, help="clients sharing one loopback address"
    )
    parser.add_argument("--backoff-base", type=float, default=0.25, help="first backoff ceiling, seconds")
    parser.add_argument("--backoff-cap", type=float, default=10.0, help="largest backoff ceiling, seconds")
    parser.add_argument("--open-timeout", type=float, default=10.0, help="WebSocket opening handshake bound")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="bound on one sign-in answer")
    parser.add_argument("--initial-concurrency", type=int, default=200, help="first sign-ins at once, in all")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between the sign-ins and SIGTERM")
    parser.add_argument(
        "--storm-timeout", type=float, default=300.0, help="seconds a client may take to come back"
    )
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="KEY=VALUE", help="extra env for the server"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep-logs", type=Path, help="copy the server logs into this directory")
    args = parser.parse_args(argv)
    if min(args.clients, args.workers, args.generators, args.clients_per_address) < 1:
        parser.error("counts must be positive")
    if any("=" not in item for item in args.server_env):
        parser.error("--server-env takes KEY=VALUE")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limits = raise_file_limit(args.clients + 4096)
    with tempfile.TemporaryDirectory(prefix="reconnect-bench-") as tmp:
        workdir = Path(tmp)
        deployment = deploy(args, workdir)
        try:
            result = run(args, deployment)
        finally:
            deployment.stop()
            keep_logs(workdir, args.keep_logs)
    result = {
        "command": " ".join(["python -m bench.reconnect", *(argv if argv is not None else sys.argv[1:])]),
        "mode": "redis" if args.redis else "embedded",
        "database": "postgresql" if args.postgres else "sqlite",
        "settings": {
            key: str(value) for key, value in vars(args).items() if key not in ("json", "keep_logs")
        },
        "nofile_limit": list(limits),
        "machine": machine(),
        "source": source_revision("circles", "circleproject", "auth_secp", "executor"),
        **result,
    }
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0 if result["storm"]["clients_not_back"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
