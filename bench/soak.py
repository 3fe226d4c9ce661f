"""Soak and fault test: many signed-in connections under a steady mix while a worker and Redis die.

Not part of the default suite (it runs for minutes); run it for the figures in
`docs/benchmarks/soak.md`:

    .venv/bin/python -m bench.soak [--connections 1000] [--seconds 300] [--rate 100] [--json out.json]

What runs, all on 127.0.0.1 free ports, all stopped at the end:

* one private `redis-server` with AOF on (`--appendonly yes --appendfsync always`, as in
  `tests/helpers/redis_server.py`);
* one uvicorn serving `circleproject.asgi:application` with `REDIS_URL` and a Stripe secret;
* two `manage.py rhai_worker --concurrency 1` processes;
* the database: a fresh SQLite file (migrated, one circle) unless `--database-url` names another,
  or `--postgres` starts a private PostgreSQL (`tests/helpers/postgres_server.py`).

Load (asyncio, `websockets`, bounded in count and time): `--connections` WebSockets, each signed
in as the circle's owner (fetch_nonce + authenticate, EIP-191), each sending sequential requests
at `--rate / --connections` per second (exponential gaps): `play` (`--play-share`, a small loop
script) or `whoami`; plus signed Stripe `payment_intent.succeeded` webhooks at `--webhook-rate`
per second (a tenth of them delivered twice, to check duplicates).

Faults: at 30% of the run one worker is SIGKILLed (its process group) and started again
`--fault-gap` seconds later; at 60% redis-server is SIGKILLed and started again on the same port
and directory (AOF reload).

Reported: requests sent and answered, results and errors by code, connections lost, p50/p99
latency per method, webhook answers by status, server RSS at start and end (and every 10 s),
CPU seconds of each process from /proc. Asserted (exit status 1 otherwise): every request got an
answer (a result or a JSON-RPC error) within `--request-timeout`; every accepted webhook (200
queued, or 503 stored) ends `processed` exactly once: one WebhookEvent row, attempts counted, and
the default Stripe script's `payments/<pi>` record written once (version 1, its event id).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import random
import resource
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import websockets

from bench.helpers import cpu_seconds, keep_logs, named_key, percentile
from circles_client.keys import SigningKey
from tests.helpers.processes import (
    PYTHON,
    ManagedProcess,
    manage,
    server_env,
    start_asgi_server,
)
from tests.helpers.redis_server import RedisServer
from tests.helpers.webhooks import payment_intent, post, stripe_event, stripe_signature

STRIPE_SECRET = "whsec_soak_secret"
PLAY_SCRIPT = "let x = 0; for i in 0..50 { x += i; } x"


# --- /proc --------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def raise_file_limit(needed: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --- the system under test ----------------------------------------------------------------


@dataclass
class System:
    workdir: Path
    env: dict[str, str]
    redis: RedisServer
    server: ManagedProcess
    port: int
    circle: str
    owner: SigningKey
    workers: list[ManagedProcess] = field(default_factory=list)
    worker_logs: int = 0

    def start_worker(self) -> ManagedProcess:
        self.worker_logs += 1
        argv = [PYTHON, "manage.py", "rhai_worker", "--concurrency", "1"]
        worker = ManagedProcess(argv, env=self.env, log_path=self.workdir / f"worker-{self.worker_logs}.log")
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for process in [self.server, *self.workers]:
            process.stop()
        self.redis.stop()


def start_system(args: argparse.Namespace, workdir: Path, database_url: str) -> System:
    owner = named_key(f"soak-owner-{uuid.uuid4().hex}")
    redis_server = RedisServer(workdir / "redis")
    (workdir / "redis").mkdir()
    redis_server.start()
    env = server_env(
        database_url,
        REDIS_URL=redis_server.url,
        CIRCLES_QUEUE_STREAM=f"soak:{uuid.uuid4().hex[:8]}",
        CIRCLES_QUEUE_CLAIM_IDLE_MS=str(args.claim_idle_ms),
        STRIPE_WEBHOOK_SECRET=STRIPE_SECRET,
        CIRCLES_WEBHOOK_RETRY_BASE_SECONDS="1",
        CIRCLES_WEBHOOK_SWEEP_SECONDS="1",
        CIRCLES_WEBHOOK_NOISE_PER_MINUTE="1000",
        CIRCLES_MAX_CONNECTIONS_PER_ADDRESS="0",  # --connections from 127.0.0.1, and their sign-ins
        CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE="0",
        CIRCLES_MAX_RUNS_PER_CALLER="0",  # one key plays on every connection: load, not a member's share
        CIRCLES_MAX_RUNS_PER_CIRCLE="0",
        LOG_LEVEL="WARNING",
    )
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "create_circle", "--name", f"soak-{owner.pubkey[:8]}", "--pubkey", owner.pubkey)
    server, port = start_asgi_server("uvicorn", env, workdir / "uvicorn.log")
    system = System(workdir, env, redis_server, server, port, owner.pubkey, owner)
    for _ in range(2):
        system.start_worker()
    return system


# --- load ---------------------------------------------------------------------------------


@dataclass
class Stats:
    sent: collections.Counter = field(default_factory=collections.Counter)
    outcomes: collections.Counter = field(
        default_factory=collections.Counter
    )  # "play result", "whoami -32012"
    latency: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    unanswered: list[dict[str, Any]] = field(default_factory=list)
    closes: collections.Counter = field(default_factory=collections.Counter)
    reconnects: int = 0
    hooks: collections.Counter = field(default_factory=collections.Counter)
    accepted_hooks: dict[str, str] = field(default_factory=dict)  # event id -> payment intent id
    timeline: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)


class Connection:
    """One signed-in WebSocket; requests matched to responses by id."""

    def __init__(self, url: str, owner: SigningKey, stats: Stats, timeout: float) -> None:
        self.url = url
        self.owner = owner
        self.stats = stats
        self.timeout = timeout
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.ws: websockets.ClientConnection | None = None
        self.reader: asyncio.Task | None = None

    async def open(self) -> None:
        self.ws = await websockets.connect(self.url, ping_interval=None, open_timeout=60, max_size=2**20)
        self.reader = asyncio.ensure_future(self.read())
        nonce = await self.call("fetch_nonce", {"pubkey": self.owner.pubkey})
        signed = await self.call(
            "authenticate", {"pubkey": self.owner.pubkey, "signature": self.owner.sign(nonce)}
        )
        assert signed is True, signed

    async def read(self) -> None:
        try:
            async for raw in self.ws:
                message = orjson.loads(raw)
                future = self.pending.pop(message.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(message)
        except websockets.ConnectionClosed:
            pass
        close = self.ws.close_rcvd
        self.stats.closes[f"{close.code} {close.reason}" if close else "1006 (no close frame)"] += 1
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("connection closed"))
        self.pending.clear()

    async def call(self, method: str, params: Any = None) -> Any:
        message = await self.request(method, params)
        assert "result" in message, message
        return message["result"]

    async def request(self, method: str, params: Any = None) -> dict:
        request_id = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        body = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            body["params"] = params
        await self.ws.send(orjson.dumps(body).decode())
        return await asyncio.wait_for(future, self.timeout)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await self.reader


async def client_loop(conn: Connection, args: argparse.Namespace, stop_at: float) -> None:
    stats = conn.stats
    per_connection = args.rate / args.connections
    rng = random.Random(id(conn))
    while True:
        await asyncio.sleep(min(rng.expovariate(per_connection), max(0.0, stop_at - time.monotonic())))
        if time.monotonic() >= stop_at:
            return
        method = "play" if rng.random() < args.play_share else "whoami"
        params = {"script": PLAY_SCRIPT} if method == "play" else None
        stats.sent[method] += 1
        started = time.monotonic()
        try:
            if conn.ws is None or conn.reader.done():
                stats.reconnects += 1
                await conn.open()
            message = await conn.request(method, params)
        except TimeoutError as exc:
            stats.unanswered.append(
                {"method": method, "why": f"no answer in {args.request_timeout}s {exc!r}"}
            )
            continue
        except (ConnectionError, websockets.ConnectionClosed, OSError) as exc:
            stats.unanswered.append({"method": method, "why": f"connection lost: {exc!r}"})
            conn.ws = None
            continue
        elapsed = (time.monotonic() - started) * 1000
        if "result" in message:
            stats.outcomes[f"{method} result"] += 1
            stats.latency[method].append(elapsed)
        else:
            stats.outcomes[f"{method} {message['error']['code']}"] += 1
            stats.latency[f"{method} error"].append(elapsed)


async def webhook_loop(system: System, args: argparse.Namespace, stats: Stats, stop_at: float) -> None:
    url = f"http://127.0.0.1:{system.port}/webhooks/stripe/{system.circle}"
    rng = random.Random(7)
    delivered: list[bytes] = []
    while True:
        await asyncio.sleep(rng.expovariate(args.webhook_rate))
        if time.monotonic() >= stop_at:
            return
        if delivered and rng.random() < 0.1:
            body = rng.choice(delivered)
            redelivery = True
        else:
            pi_id = f"pi_soak_{uuid.uuid4().hex[:16]}"
            body = orjson.dumps(stripe_event("payment_intent.succeeded", payment_intent(pi_id)))
            redelivery = False
        headers = {"Stripe-Signature": stripe_signature(body, STRIPE_SECRET)}
        status, answer = await asyncio.to_thread(post, url, body, headers)
        kind = answer.get("status") or answer.get("error", "")[:40]
        stats.hooks[f"{'redelivery' if redelivery else 'new'} {status} {kind}"] += 1
        event = orjson.loads(body)
        if status in (200, 503) and not redelivery:
            stats.accepted_hooks[event["id"]] = event["data"]["object"]["id"]
            delivered.append(body)


async def fault_loop(system: System, args: argparse.Namespace, stats: Stats, started: float) -> None:
    def note(what: str) -> None:
        stats.faults.append({"t": round(time.monotonic() - started, 1), "what": what})
        print(f"[{time.monotonic() - started:6.1f}s] {what}", flush=True)

    await asyncio.sleep(0.3 * args.seconds)
    victim = system.workers[0]
    os.killpg(victim.pid, signal.SIGKILL)
    await asyncio.to_thread(victim.process.wait, 10)
    note(f"worker {victim.pid} SIGKILLed")
    await asyncio.sleep(args.fault_gap)
    note(f"worker {system.start_worker().pid} started")
    await asyncio.sleep(max(0.0, 0.6 * args.seconds - (time.monotonic() - started)))
    os.killpg(system.redis.process.pid, signal.SIGKILL)
    await asyncio.to_thread(system.redis.process.process.wait, 10)
    system.redis.process.stop()
    note("redis-server SIGKILLed")
    await asyncio.sleep(args.fault_gap)
    await asyncio.to_thread(system.redis.start)
    note("redis-server started (AOF reloaded)")


async def sampler(system: System, stats: Stats, started: float, stop_at: float) -> None:
    while time.monotonic() < stop_at:
        stats.timeline.append(
            {
                "t": round(time.monotonic() - started, 1),
                "server_rss_mib": round(rss_mib(system.server.pid), 1),
                "answered": sum(stats.outcomes.values()),
                "unanswered": len(stats.unanswered),
            }
        )
        await asyncio.sleep(10)


async def run_load(system: System, args: argparse.Namespace) -> tuple[Stats, dict[str, Any]]:
    stats = Stats()
    url = f"ws://127.0.0.1:{system.port}/{system.circle}"
    connections = [
        Connection(url, system.owner, stats, args.request_timeout) for _ in range(args.connections)
    ]
    gate = asyncio.Semaphore(50)

    async def open_one(conn: Connection) -> None:
        async with gate:
            await conn.open()

    t0 = time.monotonic()
    await asyncio.gather(*(open_one(conn) for conn in connections))
    signed_in = time.monotonic() - t0
    print(f"{args.connections} connections signed in in {signed_in:.1f}s", flush=True)
    await asyncio.sleep(2)
    figures: dict[str, Any] = {
        "sign_in_seconds": round(signed_in, 1),
        "server_rss_mib_start": round(rss_mib(system.server.pid), 1),
        "cpu_start": {"server": cpu_seconds(system.server.pid, with_children=True)},
    }
    started = time.monotonic()
    stop_at = started + args.seconds
    tasks = [asyncio.ensure_future(client_loop(conn, args, stop_at)) for conn in connections]
    tasks.append(asyncio.ensure_future(webhook_loop(system, args, stats, stop_at)))
    background = [
        asyncio.ensure_future(fault_loop(system, args, stats, started)),
        asyncio.ensure_future(sampler(system, stats, started, stop_at)),
    ]
    # Bounded: every loop stops at stop_at, and every request waits at most request_timeout.
    await asyncio.wait_for(asyncio.gather(*tasks), args.seconds + args.request_timeout + 60)
    for task in background:
        task.cancel()
    figures["load_seconds"] = round(time.monotonic() - started, 1)
    figures["server_rss_mib_end"] = round(rss_mib(system.server.pid), 1)
    figures["server_cpu_seconds"] = round(
        cpu_seconds(system.server.pid, with_children=True) - figures.pop("cpu_start")["server"], 1
    )
    await asyncio.gather(*(conn.close() for conn in connections))
    return stats, figures


# --- checks -------------------------------------------------------------------------------

CHECK_SCRIPT = """
import json, sys
from circles.models import Circle, Record
from webhooks.models import WebhookEvent
wanted = json.load(open(sys.argv[-1]))
circle = Circle.objects.get(public_key=wanted["circle"])
events = WebhookEvent.objects.filter(circle=circle, provider="stripe")
rows = list(events.values_list("event_id", "status", "attempts"))
records = {r.key: [r.version, r.data.get("event_id"), r.data.get("status")]
           for r in Record.objects.filter(circle=circle, collection="payments")}
print(json.dumps({"rows": rows, "records": records}))
"""


def database_state(system: System, accepted: dict[str, str]) -> dict[str, Any]:
    path = system.workdir / "wanted.json"
    path.write_text(json.dumps({"circle": system.circle, "accepted": accepted}))
    script = system.workdir / "check.py"
    script.write_text(CHECK_SCRIPT.replace("sys.argv[-1]", repr(str(path))))
    done = manage(system.env, "shell", "-c", script.read_text())
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_webhooks(system: System, stats: Stats, wait: float) -> dict[str, Any]:
    """Wait until every accepted event is processed; then check exactly-once."""
    accepted = stats.accepted_hooks
    deadline = time.monotonic() + wait
    while True:
        state = database_state(system, accepted)
        accepted_rows = collections.defaultdict(list)
        for event_id, status, attempts in state["rows"]:
            if status not in ("rejected", "duplicate"):
                accepted_rows[event_id].append((status, attempts))
        pending = [e for e in accepted if [s for s, _ in accepted_rows.get(e, [])] != ["processed"]]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(2)
    records = state["records"]
    problems = []
    for event_id, pi_id in accepted.items():
        rows = accepted_rows.get(event_id, [])
        record = records.get(pi_id)
        if len(rows) != 1 or rows[0][0] != "processed":
            problems.append({"event": event_id, "rows": rows})
        elif record is None or record[0] != 1 or record[1] != event_id:
            problems.append({"event": event_id, "record": record})
    statuses = collections.Counter(status for _, status, _ in state["rows"])
    attempts = collections.Counter(a for rows in accepted_rows.values() for _, a in rows)
    return {
        "accepted": len(accepted),
        "event_rows_by_status": dict(statuses),
        "attempts_histogram": {str(k): v for k, v in sorted(attempts.items())},
        "payments_records": len(records),
        "problems": problems[:20],
        "problem_count": len(problems),
    }


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000, help="signed-in WebSockets")
    parser.add_argument("--seconds", type=float, default=300.0, help="duration of the load")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second, all connections")
    parser.add_argument("--play-share", type=float, default=0.5, help="share of requests that are play")
    parser.add_argument("--webhook-rate", type=float, default=3.0, help="Stripe deliveries per second")
    parser.add_argument("--request-timeout", type=float, default=60.0, help="seconds an answer may take")
    parser.add_argument("--fault-gap", type=float, default=5.0, help="seconds a killed process stays down")
    parser.add_argument("--claim-idle-ms", type=int, default=5000, help="CIRCLES_QUEUE_CLAIM_IDLE_MS")
    parser.add_argument("--database-url", help="an existing database (default: a temp SQLite file)")
    parser.add_argument("--postgres", action="store_true", help="start a private PostgreSQL for the run")
    parser.add_argument("--webhook-wait", type=float, default=120.0, help="seconds to wait for processing")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep-logs", type=Path, help="copy the process logs into this directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limits = raise_file_limit(2 * args.connections + 1024)
    workdir = Path(tempfile.mkdtemp(prefix="circles-soak-"))
    postgres = None
    if args.postgres:
        from tests.helpers.postgres_server import PostgresServer

        postgres = PostgresServer()
        postgres.start()
        database_url = postgres.create_database("soak")
    else:
        database_url = args.database_url or f"sqlite:///{workdir / 'soak.sqlite3'}"
    system = start_system(args, workdir, database_url)
    try:
        stats, figures = asyncio.run(run_load(system, args))
        hooks = check_webhooks(system, stats, args.webhook_wait)
        log = system.server.output()
    finally:
        system.stop()
        if postgres is not None:
            postgres.stop()
        keep_logs(workdir, args.keep_logs)
    answered = sum(stats.outcomes.values())
    report = {
        "command": " ".join(["python -m bench.soak", *(argv if argv is not None else sys.argv[1:])]),
        "database": database_url.split(":", 1)[0],
        "connections": args.connections,
        "seconds": args.seconds,
        "rate": args.rate,
        "nofile_limit": list(limits),
        "cpus": os.cpu_count(),
        **figures,
        "sent": dict(stats.sent),
        "answered": answered,
        "outcomes": dict(sorted(stats.outcomes.items())),
        "unanswered": len(stats.unanswered),
        "unanswered_examples": stats.unanswered[:10],
        "closes": dict(stats.closes),
        "reconnects": stats.reconnects,
        "latency_ms": {
            name: {
                "n": len(values),
                "p50": round(percentile(values, 0.5), 2),
                "p99": round(percentile(values, 0.99), 2),
                "max": round(max(values), 1),
                "mean": round(statistics.fmean(values), 2),
            }
            for name, values in sorted(stats.latency.items())
            if values
        },
        "webhook_answers": dict(sorted(stats.hooks.items())),
        "webhooks": hooks,
        "faults": stats.faults,
        "timeline": stats.timeline,
        "server_log_tracebacks": log.count("Traceback"),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    failures = []
    if stats.unanswered:
        failures.append(f"{len(stats.unanswered)} requests unanswered")
    if answered != sum(stats.sent.values()):
        failures.append(f"answered {answered} of {sum(stats.sent.values())}")
    if hooks["problem_count"]:
        failures.append(f"{hooks['problem_count']} accepted webhooks not processed exactly once")
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
