"""Fairness benchmark: one member floods long plays; another member's `play("1")` against its idle latency.

Real servers on 127.0.0.1 free ports, all stopped at the end: a private PostgreSQL and (Redis
mode) a private redis-server (tests/helpers), `python -m circleproject.serve` (the production
entry point) and, in Redis mode, `manage.py rhai_worker --concurrency 2`. One circle; the
attacker and the victim are two members of it. The executor shares are the defaults
(CIRCLES_MAX_RUNS_PER_CALLER=1; 2 embedded threads / 2 workers); only the per-connection rate,
the per-address limits and the operations cap (so `loop {}` runs for seconds) are raised.

Per mode (`embedded`, `redis`), in one run:

1. idle: the victim plays `1` sequentially for `--seconds` on an otherwise idle server;
2. flood: the attacker opens `--connections` connections, each keeping `--per-connection` plays
   of `loop {}` (timeout `--attack-ms`) in flight (a new one as each is answered); after a
   second, the victim plays `1` sequentially for `--seconds`;
3. after: the attacker disconnects; the victim plays again for `--seconds`.

Reported: the victim's p50/p99/max per phase and its errors, the attacker's answers by kind,
and the target p99(flood) <= 3 x p50(idle).

`--waiting 0,8` compares values of CIRCLES_MAX_WAITING_PER_CALLER (the most plays one key may
have waiting in its line; 0: no bound, as before that setting) in one invocation: per mode and
repeat, one fresh server per value, the values interleaved so that both see the same machine.
Without it the server runs with the shipped default.

    .venv/bin/python -m bench.fairness [--seconds 10] [--connections 64] [--waiting 0,8]
        [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.helpers import named_key, percentile
from bench.ws_rpc import RATE_ENV, run_loop
from circles_client.keys import SigningKey
from tests.helpers.postgres_server import PostgresServer
from tests.helpers.processes import PYTHON, ManagedProcess, manage, server_env, start_asgi_server
from tests.helpers.redis_server import RedisServer

MODES = ("embedded", "redis")
# The flooding member; its key is made again from this name in the attacker's own process.
ATTACKER = "bench-fair-attacker"
TARGET_RATIO = 3.0
LONG_OPERATIONS = str(10**12)  # `loop {}` stops at the default 5,000,000 operations in ~0.1 s
OPTIONS = {"compression": None, "ping_interval": None, "open_timeout": 30, "close_timeout": 5, "proxy": None}


class Connection:
    """One signed-in WebSocket whose answers are matched to requests by id (several in flight)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future] = {}
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, url: str, key: SigningKey) -> Connection:
        connection = cls(await connect(url, **OPTIONS))
        nonce = (await connection.call("fetch_nonce", {"pubkey": key.pubkey}))["result"]
        signed = await connection.call("authenticate", {"pubkey": key.pubkey, "signature": key.sign(nonce)})
        if signed.get("result") is not True:
            raise RuntimeError(f"sign-in failed: {signed}")
        return connection

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                response = orjson.loads(frame)
                future = self.pending.pop(response.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(response)
        except Exception:  # closed abnormally: the requests still waiting fail below
            pass
        closed = ConnectionError(f"connection closed: {self.ws.close_code} {self.ws.close_reason}")
        for future in self.pending.values():
            if not future.done():
                future.set_exception(closed)
        self.pending.clear()

    async def call(self, method: str, params: Any) -> dict:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        message = {"jsonrpc": "2.0", "method": method, "params": params, "id": self.next_id}
        await self.ws.send(orjson.dumps(message).decode())  # a text frame: bytes would go as binary
        return await future

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


def kind_of(response: dict) -> str:
    if "result" in response:
        return "result"
    error = response["error"]
    detail = (error.get("data") or {}).get("kind") or (error.get("data") or {}).get("reason") or ""
    return f"{error['code']} {detail}".strip()


async def victim_phase(url: str, victim: SigningKey, seconds: float) -> dict[str, Any]:
    connection = await Connection.open(url, victim)
    latencies, errors = [], collections.Counter()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = await asyncio.wait_for(connection.call("play", {"script": "1"}), 60)
            elapsed = (time.perf_counter() - started) * 1000
            if response.get("result", {}).get("value") == 1:
                latencies.append(elapsed)
            else:
                errors[kind_of(response)] += 1
    finally:
        await connection.close()
    return {
        "plays": len(latencies),
        "errors": dict(errors),
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
    }


async def flood(
    url: str, attacker: SigningKey, args: argparse.Namespace, stop: asyncio.Event, tally, ready=None
) -> None:
    connections = await asyncio.gather(*(Connection.open(url, attacker) for _ in range(args.connections)))
    params = {"script": "loop {}", "timeout_ms": args.attack_ms}

    async def keep_playing(connection: Connection) -> None:
        while not stop.is_set():
            tally[kind_of(await connection.call("play", params))] += 1

    tasks = [asyncio.ensure_future(keep_playing(c)) for c in connections for _ in range(args.per_connection)]
    await asyncio.sleep(0)  # every task has sent its first play
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        for connection in connections:  # the disconnect: their runs must stop
            await connection.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def flood_process(url: str, attacker_name: str, args: argparse.Namespace, stop, answers, ready) -> None:
    """The attacker in a process of its own: its answer bursts must not share the victim's event
    loop (they did, and the victim's measured latency included the attacker's client work).
    `ready` is set once its connections are signed in and its plays sent."""

    async def main() -> None:
        flag, tally = asyncio.Event(), collections.Counter()

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.05)
            flag.set()

        watcher = asyncio.ensure_future(watch())
        await flood(url, named_key(attacker_name), args, flag, tally, ready)
        await watcher
        answers.put(dict(tally))

    asyncio.run(main())


async def measure(url: str, victim: SigningKey, args: argparse.Namespace) -> dict[str, Any]:
    """The victim's latency idle, under the attacker's flood (in its own process), and after."""
    await victim_phase(url, victim, 1.0)  # warm-up
    idle = await victim_phase(url, victim, args.seconds)
    context = multiprocessing.get_context("spawn")
    stop, answers, ready = context.Event(), context.Queue(), context.Event()
    attack = context.Process(target=flood_process, args=(url, ATTACKER, args, stop, answers, ready))
    attack.start()
    # On a loaded machine the attacker's start and 64 sign-ins took seconds: a fixed pause let
    # the victim's phase begin before the flood did. Wait for its plays to be sent, then 1 s.
    if not await asyncio.get_running_loop().run_in_executor(None, ready.wait, 120):
        raise RuntimeError("the attacker never got its plays in flight")
    await asyncio.sleep(1.0)
    loaded = await victim_phase(url, victim, args.seconds)
    stop.set()
    tally = await asyncio.get_running_loop().run_in_executor(None, answers.get)
    attack.join(30)
    after = await victim_phase(url, victim, args.seconds)
    ratio = loaded["p99_ms"] / idle["p50_ms"]
    return {
        "idle": idle,
        "flood": loaded,
        "after": after,
        "attacker_answers": dict(tally),
        "p99_flood_over_p50_idle": ratio,
        "target_met": ratio <= TARGET_RATIO,
    }


def start_mode(
    mode: str, database_url: str, redis_url: str, workdir: Path, waiting: str | None = None
) -> tuple[str, list[ManagedProcess]]:
    settings = {**RATE_ENV, "CIRCLES_SCRIPT_MAX_OPERATIONS": LONG_OPERATIONS, "LOG_LEVEL": "WARNING"}
    if waiting is not None:
        settings["CIRCLES_MAX_WAITING_PER_CALLER"] = waiting
    processes: list[ManagedProcess] = []
    if mode == "redis":
        settings.update(REDIS_URL=redis_url, CIRCLES_QUEUE_STREAM=f"bench-fair:{os.getpid()}")
        argv = [PYTHON, "manage.py", "rhai_worker", "--concurrency", "2"]
        processes.append(
            ManagedProcess(argv, env=server_env(database_url, **settings), log_path=workdir / "workers.log")
        )
    server, port = start_asgi_server(
        "serve", server_env(database_url, **settings), workdir / f"{mode}-serve.log"
    )
    processes.append(server)
    return f"ws://127.0.0.1:{port}", processes


async def wait_ready(url: str, victim: SigningKey) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            connection = await Connection.open(url, victim)
            try:
                response = await asyncio.wait_for(connection.call("play", {"script": "1"}), 5)
            finally:
                await connection.close()
            if response.get("result", {}).get("value") == 1:
                return
        except (OSError, TimeoutError) as exc:
            error = exc
        else:
            error = response
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server never answered a play: {error!r}")
        await asyncio.sleep(0.2)


def print_mode(mode: str, result: dict[str, Any]) -> None:
    print(f"\n{mode}:  (load average {result['loadavg'][0]:.1f} at its end)")
    for phase in ("idle", "flood", "after"):
        row = result[phase]
        print(
            f"  victim {phase:<6} {row['plays']:>6} plays  p50 {row['p50_ms']:7.2f}  "
            f"p99 {row['p99_ms']:7.2f}  max {row['max_ms']:8.2f} ms  errors {row['errors'] or '-'}"
        )
    print(f"  attacker answers: {result['attacker_answers']}")
    verdict = "MET" if result["target_met"] else "MISSED"
    print(
        f"  p99(flood) / p50(idle) = {result['p99_flood_over_p50_idle']:.2f}  "
        f"target <= {TARGET_RATIO}: {verdict}"
    )


def print_summary(results: dict[str, Any]) -> None:
    """One line per run: p99(flood) / p50(idle), and the victim's flood p50 / p99 / max."""
    print("\nrun                              ratio   idle p50  flood p50  flood p99  flood max  load")
    for name, result in results.items():
        idle, loaded = result["idle"], result["flood"]
        print(
            f"{name:<32} {result['p99_flood_over_p50_idle']:6.2f}  {idle['p50_ms']:8.2f}  "
            f"{loaded['p50_ms']:9.2f}  {loaded['p99_ms']:9.2f}  {loaded['max_ms']:9.1f}  "
            f"{result['loadavg'][0]:4.1f}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(MODES), help="embedded, redis or both")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each victim phase")
    parser.add_argument("--connections", type=int, default=64, help="the attacker's connections")
    parser.add_argument(
        "--per-connection", type=int, default=4, help="the attacker's plays in flight per connection"
    )
    parser.add_argument("--attack-ms", type=int, default=3000, help="timeout_ms of each attacking `loop {}`")
    parser.add_argument(
        "--waiting",
        default="",
        help="CIRCLES_MAX_WAITING_PER_CALLER values to compare, e.g. 0,8 (default: the shipped one)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs of each mode (and --waiting value)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    args.waiting_values = [w.strip() for w in args.waiting.split(",") if w.strip()] or [None]
    if any(w is not None and not w.isdigit() for w in args.waiting_values) or args.repeats < 1:
        parser.error("--waiting takes whole numbers, --repeats at least 1")
    args.mode_names = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in MODES for m in args.mode_names):
        parser.error(f"modes are {MODES}")
    if args.connections < 1 or args.connections > 500 or args.per_connection < 1 or args.per_connection > 32:
        parser.error("1..500 connections, 1..32 plays per connection")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    attacker, victim = named_key(ATTACKER), named_key("bench-fair-victim")
    owner = named_key("bench-fair-owner")
    results: dict[str, Any] = {}
    wall = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fair-bench-") as tmp:
        workdir = Path(tmp)
        postgres, redis_server = PostgresServer(), RedisServer(workdir, persist=False)
        try:
            postgres.start()
            redis_server.start()
            database_url = postgres.create_database("fair")
            env = server_env(database_url)
            manage(env, "migrate", "--noinput", "-v0")
            manage(env, "create_circle", "--name", "fair", "--pubkey", owner.pubkey)
            for member in (attacker, victim):
                manage(env, "add_member", owner.pubkey, member.pubkey, "--role", "member")
            for repeat in range(args.repeats):
                for mode in args.mode_names:
                    for waiting in args.waiting_values:
                        name = mode if waiting is None else f"{mode} waiting={waiting}"
                        name += f" #{repeat + 1}" if args.repeats > 1 else ""
                        url, processes = start_mode(mode, database_url, redis_server.url, workdir, waiting)
                        try:
                            url = f"{url}/{owner.pubkey}"
                            run_loop(wait_ready(url, victim))
                            results[name] = run_loop(measure(url, victim, args))
                        finally:
                            for process in reversed(processes):
                                process.stop()
                        results[name]["loadavg"] = os.getloadavg()
                        print_mode(name, results[name])
        finally:
            redis_server.stop()
            postgres.stop()
    print_summary(results)
    print(f"\nwall time {time.monotonic() - wall:.0f} s, load average at the end {os.getloadavg()}")
    if args.json:
        document = {
            "command": " ".join(
                ["python", "-m", "bench.fairness", *(argv if argv is not None else sys.argv[1:])]
            ),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "loadavg_at_end": os.getloadavg(),
            },
            "settings": {k: v for k, v in vars(args).items() if k not in ("json", "mode_names")},
            "results": results,
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0 if all(r["target_met"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
