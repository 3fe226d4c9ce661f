"""WebSocket JSON-RPC benchmark: our circle consumer against a bare Channels echo and a raw `websockets` echo.

Three servers, one process each, all on 127.0.0.1 free ports and stopped at the end:

* ours: the project (`circleproject.asgi:application`) under uvicorn, embedded mode (SQLite in a
  temp dir, in-memory channel layer, no REDIS_URL), DEBUG=0, the per-connection request rate
  raised out of the way (CIRCLES_RATE_PER_SECOND/CIRCLES_RATE_BURST), one circle with a member;
* channels-echo: `bench.echo_servers:channels_echo_app` (AsyncJsonWebsocketConsumer) under the
  same uvicorn with the same flags;
* websockets-echo: `python -m bench.echo_servers` (websockets.asyncio.server).

Phases (the load generator is this process, `--connections` concurrent clients, each doing up to
N sequential operations, every phase also bounded by `--seconds`):

* rtt: round trips on open connections (ours: `whoami` on a signed-in connection; the echoes
  echo the same frame);
* crc: connect, one request (the `whoami` frame), close;
* signin (ours only): connect, `fetch_nonce`, `authenticate` (EIP-191 signature), close.
* httpnonce (ours only): `GET /auth/nonce` on a new HTTP connection (the nonces are kept);
* urlsignin (ours only): connect signed in by the URL (`?pubkey=&sig=&nonce=`, with those
  nonces), one `whoami`, close.

Server CPU per operation is the server process's utime+stime (/proc/<pid>/stat, all threads)
over the phase divided by the operations. Every phase runs `--repeats` times interleaved
(A B C A B C ...) and medians are reported. Targets: whoami server CPU per round trip <= the
Channels echo's (ratio <= 1.0); sign-in rate >= 0.7x the Channels echo's crc rate; server CPU of
a sign-in <= 1.5x, and of a sign-in in the URL <= 1.2x, the Channels echo's crc (issue 14).

    .venv/bin/python -m bench.ws_rpc [--connections 16] [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.helpers import BenchError, cpu_seconds, keep_logs, machine, named_key, source_revision
from circles_client.keys import SigningKey
from tests.helpers.processes import (
    PYTHON,
    ManagedProcess,
    free_port,
    manage,
    server_env,
    wait_for_port,
)

OURS_APP = "circleproject.asgi:application"
UVICORN_FLAGS = ("--no-access-log", "--lifespan", "off")
# High enough that the per-connection token bucket never answers -32029 during a run, and no
# per-address limit (every client of a run comes from 127.0.0.1).
RATE_ENV = {
    "CIRCLES_RATE_PER_SECOND": "1000000",
    "CIRCLES_RATE_BURST": "1000000",
    "CIRCLES_MAX_CONNECTIONS_PER_ADDRESS": "0",
    "CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE": "0",
    "CIRCLES_AUTH_NONCES_PER_ADDRESS_PER_MINUTE": "0",
}
OURS, CHANNELS_ECHO, WEBSOCKETS_ECHO = "ours", "channels-echo", "websockets-echo"
SERVERS = (OURS, CHANNELS_ECHO, WEBSOCKETS_ECHO)
PHASES = {
    "rtt": ("round trip on an open connection", SERVERS),
    "crc": ("connect + one request + close", SERVERS),
    "signin": ("connect + fetch_nonce + authenticate + close", (OURS,)),
    "httpnonce": ("GET /auth/nonce on a new HTTP connection", (OURS,)),
    "urlsignin": ("connect signed in by the URL (?pubkey=&sig=&nonce=) + one request + close", (OURS,)),
}
WHOAMI_CPU_TARGET = 1.0
SIGNIN_RATE_TARGET = 0.7
SIGNIN_CPU_TARGET = 1.5  # issue 14: a WebSocket sign-in <= 1.5x a bare Channels connect-request-close
URL_SIGNIN_CPU_TARGET = 1.2  # issue 14: a sign-in at connect <= 1.2x


@dataclass
class Sample:
    """One phase against one server."""

    phase: str
    server: str
    repeat: int
    ops: int
    seconds: float
    server_cpu_s: float
    client_cpu_s: float

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    @property
    def server_us_per_op(self) -> float:
        return 1e6 * self.server_cpu_s / self.ops if self.ops else float("nan")

    @property
    def client_us_per_op(self) -> float:
        return 1e6 * self.client_cpu_s / self.ops if self.ops else float("nan")

    @property
    def server_busy(self) -> float:
        """Server CPU over wall time (1.0 = one core saturated)."""
        return self.server_cpu_s / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "rate": self.rate,
            "server_us_per_op": self.server_us_per_op,
            "client_us_per_op": self.client_us_per_op,
            "server_busy": self.server_busy,
        }


class Client:
    """Frames JSON-RPC requests on one client connection and checks the answers."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        request_id = next(self.ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            message["params"] = params
        await self.ws.send(orjson.dumps(message).decode())
        response = orjson.loads(await self.ws.recv(decode=False))
        if response.get("id") != request_id or "result" not in response:
            raise BenchError(f"{method}: unexpected response {response!r:.300}")
        return response["result"]


class LoadGenerator:
    """Runs the phases against one server URL with a fixed number of concurrent connections."""

    def __init__(self, args: argparse.Namespace, signer: SigningKey) -> None:
        self.connections = args.connections
        self.rtt_per_conn = args.rtt_per_conn
        self.handshakes_per_conn = args.handshakes_per_conn
        self.seconds = args.seconds
        self.signer = signer
        self.url_nonces: list[str] = []  # texts from the httpnonce phase, spent by urlsignin
        self.connect_options = {
            "compression": None if args.no_deflate else "deflate",
            "ping_interval": None,
            "open_timeout": 10,
            "close_timeout": 10,
            "proxy": None,
        }

    def open(self, url: str):
        return connect(url, **self.connect_options)

    async def sign_in(self, client: Client) -> None:
        nonce = await client.call("fetch_nonce", {"pubkey": self.signer.pubkey})
        ok = await client.call(
            "authenticate", {"pubkey": self.signer.pubkey, "signature": self.signer.sign(nonce)}
        )
        if ok is not True:
            raise BenchError(f"authenticate answered {ok!r}")

    async def one_request(self, client: Client) -> None:
        await client.call("whoami")

    async def measure(
        self, pid: int, body: Callable[[float], Awaitable[int]]
    ) -> tuple[int, float, float, float]:
        """Run `body(deadline)` (returns the ops done) between two CPU readings of `pid` and this process."""
        server_before, client_before = cpu_seconds(pid), time.process_time()
        started = time.monotonic()
        async with asyncio.timeout(self.seconds + 60):
            ops = await body(started + self.seconds)
        seconds = time.monotonic() - started
        return ops, seconds, cpu_seconds(pid) - server_before, time.process_time() - client_before

    async def round_trips(self, url: str, pid: int, *, signed_in: bool, per_conn: int | None = None):
        """Sequential whoami-frame round trips on `connections` open connections (opened beforehand)."""
        per_conn = self.rtt_per_conn if per_conn is None else per_conn
        async with contextlib.AsyncExitStack() as stack:
            sockets = await asyncio.gather(
                *(stack.enter_async_context(self.open(url)) for _ in range(self.connections))
            )
            clients = [Client(ws) for ws in sockets]
            if signed_in:
                await asyncio.gather(*(self.sign_in(client) for client in clients))

            async def worker(client: Client, deadline: float) -> int:
                done = 0
                while done < per_conn and time.monotonic() < deadline:
                    await client.call("whoami")
                    done += 1
                return done

            async def body(deadline: float) -> int:
                return sum(await asyncio.gather(*(worker(client, deadline) for client in clients)))

            return await self.measure(pid, body)

    async def handshakes(
        self,
        url: str,
        pid: int,
        operation: Callable[[Client], Awaitable[None]],
        per_conn: int | None = None,
    ):
        """Each of `connections` clients repeatedly connects, runs `operation`, and closes."""
        per_conn = self.handshakes_per_conn if per_conn is None else per_conn

        async def worker(deadline: float) -> int:
            done = 0
            while done < per_conn and time.monotonic() < deadline:
                async with self.open(url) as ws:
                    await operation(Client(ws))
                done += 1
            return done

        async def body(deadline: float) -> int:
            return sum(await asyncio.gather(*(worker(deadline) for _ in range(self.connections))))

        return await self.measure(pid, body)

    async def http_nonce(self, url: str) -> str:
        """One `GET /auth/nonce` on a new HTTP/1.1 connection (as a client fetching before connecting)."""
        host, port = url.removeprefix("ws://").split("/", 1)[0].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /auth/nonce HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        response = await reader.read()
        writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise BenchError(f"/auth/nonce answered {head[:40]!r}")
        return orjson.loads(body)["nonce"]

    async def http_nonces(self, url: str, pid: int, per_conn: int | None = None):
        """Each of `connections` clients fetches nonces over HTTP; they are kept for urlsignin."""
        per_conn = self.handshakes_per_conn if per_conn is None else per_conn
        self.url_nonces = []

        async def worker(deadline: float) -> int:
            done = 0
            while done < per_conn and time.monotonic() < deadline:
                self.url_nonces.append(await self.http_nonce(url))
                done += 1
            return done

        async def body(deadline: float) -> int:
            return sum(await asyncio.gather(*(worker(deadline) for _ in range(self.connections))))

        return await self.measure(pid, body)

    async def url_sign_ins(self, url: str, pid: int):
        """Each client connects signed in by the URL (a nonce from the httpnonce phase), one whoami, close."""
        signed = [
            f"{url}?pubkey={self.signer.pubkey}&sig={self.signer.sign(text)}&nonce={quote(text)}"
            for text in self.url_nonces
        ]
        self.url_nonces = []

        async def worker(deadline: float) -> int:
            done = 0
            while signed and time.monotonic() < deadline:
                async with self.open(signed.pop()) as ws:
                    whoami = await Client(ws).call("whoami")
                if whoami["authenticated"] is not True:
                    raise BenchError(f"URL sign-in answered {whoami!r}")
                done += 1
            return done

        async def body(deadline: float) -> int:
            return sum(await asyncio.gather(*(worker(deadline) for _ in range(self.connections))))

        return await self.measure(pid, body)

    async def run_phase(self, phase: str, server: str, url: str, pid: int, *, warmup: bool = False):
        per_conn = None
        if warmup:
            per_conn = 50 if phase == "rtt" else 3
        if phase == "rtt":
            return await self.round_trips(url, pid, signed_in=server == OURS, per_conn=per_conn)
        if phase == "crc":
            return await self.handshakes(url, pid, self.one_request, per_conn)
        if phase == "signin":
            return await self.handshakes(url, pid, self.sign_in, per_conn)
        if phase == "httpnonce":
            return await self.http_nonces(url, pid, per_conn)
        if phase == "urlsignin":
            return await self.url_sign_ins(url, pid)
        raise ValueError(phase)


@dataclass
class RunningServer:
    name: str
    url: str
    process: ManagedProcess


def start_process(name: str, argv: list[str], env: dict[str, str], logs: Path, port: int) -> ManagedProcess:
    process = ManagedProcess(argv, env=env, log_path=logs / f"{name}.log")
    try:
        wait_for_port(port, process.process)
    except Exception:
        process.stop()
        raise RuntimeError(f"{name} did not start:\n{process.output()}") from None
    return process


def uvicorn_argv(app: str, port: int) -> list[str]:
    return [PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), *UVICORN_FLAGS]


def start_servers(
    workdir: Path,
    owner: SigningKey,
    member: SigningKey,
    started: list[RunningServer],
    args: argparse.Namespace,
) -> None:
    """Prepare the database and start the three servers, appending each to `started` as it runs."""
    env = server_env(f"sqlite:///{workdir / 'circles.sqlite3'}", **RATE_ENV)
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "create_circle", "--name", "bench", "--pubkey", owner.pubkey)
    manage(env, "add_member", owner.pubkey, member.pubkey, "--role", "member")
    echo_env = {key: value for key, value in env.items() if key != "DJANGO_SETTINGS_MODULE"}
    ours_env = dict(env)
    if args.database_query:
        ours_env["DATABASE_URL"] += "?" + args.database_query
    ours_env.update(item.split("=", 1) for item in args.ours_env)
    for name, make_argv, server_environment in (
        (OURS, lambda port: uvicorn_argv(args.ours_app, port), ours_env),
        (CHANNELS_ECHO, lambda port: uvicorn_argv("bench.echo_servers:channels_echo_app", port), echo_env),
        (WEBSOCKETS_ECHO, lambda port: [PYTHON, "-m", "bench.echo_servers", "--port", str(port)], echo_env),
    ):
        port = free_port()
        process = start_process(name, make_argv(port), server_environment, workdir, port)
        started.append(RunningServer(name, f"ws://127.0.0.1:{port}/{owner.pubkey}", process))


def median(samples: list[Sample], attribute: str) -> float:
    return statistics.median(getattr(sample, attribute) for sample in samples)


def summarise(samples: list[Sample]) -> dict[str, Any]:
    """Medians per (phase, server) and the ratios against the targets."""
    groups: dict[tuple[str, str], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.phase, sample.server), []).append(sample)
    rows = {
        f"{phase}/{server}": {
            "phase": phase,
            "server": server,
            "repeats": len(group),
            "ops_median": median(group, "ops"),
            "rate_median": median(group, "rate"),
            "rate_min": min(s.rate for s in group),
            "rate_max": max(s.rate for s in group),
            "server_us_per_op_median": median(group, "server_us_per_op"),
            "server_us_per_op_min": min(s.server_us_per_op for s in group),
            "server_us_per_op_max": max(s.server_us_per_op for s in group),
            "client_us_per_op_median": median(group, "client_us_per_op"),
            "server_busy_median": median(group, "server_busy"),
        }
        for (phase, server), group in groups.items()
    }

    def value(phase: str, server: str, field: str) -> float:
        return rows[f"{phase}/{server}"][field]

    def paired(phase_a: str, server_a: str, phase_b: str, server_b: str, attribute: str) -> list[float]:
        a = {s.repeat: getattr(s, attribute) for s in groups[(phase_a, server_a)]}
        b = {s.repeat: getattr(s, attribute) for s in groups[(phase_b, server_b)]}
        return [a[r] / b[r] for r in sorted(a) if b.get(r)]

    cpu = "server_us_per_op_median"
    rate = "rate_median"
    ratios = {
        "whoami_cpu_vs_channels_echo": {
            "value": value("rtt", OURS, cpu) / value("rtt", CHANNELS_ECHO, cpu),
            "per_repeat": paired("rtt", OURS, "rtt", CHANNELS_ECHO, "server_us_per_op"),
            "target": f"<= {WHOAMI_CPU_TARGET}",
            "met": value("rtt", OURS, cpu) / value("rtt", CHANNELS_ECHO, cpu) <= WHOAMI_CPU_TARGET,
        },
        "signin_rate_vs_channels_echo_crc": {
            "value": value("signin", OURS, rate) / value("crc", CHANNELS_ECHO, rate),
            "per_repeat": paired("signin", OURS, "crc", CHANNELS_ECHO, "rate"),
            "target": f">= {SIGNIN_RATE_TARGET}",
            "met": value("signin", OURS, rate) / value("crc", CHANNELS_ECHO, rate) >= SIGNIN_RATE_TARGET,
        },
        "whoami_rate_vs_channels_echo": {
            "value": value("rtt", OURS, rate) / value("rtt", CHANNELS_ECHO, rate),
        },
        "signin_cpu_vs_channels_echo_crc": {
            "value": value("signin", OURS, cpu) / value("crc", CHANNELS_ECHO, cpu),
            "per_repeat": paired("signin", OURS, "crc", CHANNELS_ECHO, "server_us_per_op"),
            "target": f"<= {SIGNIN_CPU_TARGET}",
            "met": value("signin", OURS, cpu) / value("crc", CHANNELS_ECHO, cpu) <= SIGNIN_CPU_TARGET,
        },
        "urlsignin_cpu_vs_channels_echo_crc": {
            "value": value("urlsignin", OURS, cpu) / value("crc", CHANNELS_ECHO, cpu),
            "per_repeat": paired("urlsignin", OURS, "crc", CHANNELS_ECHO, "server_us_per_op"),
            "target": f"<= {URL_SIGNIN_CPU_TARGET}",
            "met": value("urlsignin", OURS, cpu) / value("crc", CHANNELS_ECHO, cpu) <= URL_SIGNIN_CPU_TARGET,
        },
        "httpnonce_plus_urlsignin_cpu_vs_channels_echo_crc": {
            "value": (value("httpnonce", OURS, cpu) + value("urlsignin", OURS, cpu))
            / value("crc", CHANNELS_ECHO, cpu),
        },
        "crc_cpu_ours_vs_channels_echo": {
            "value": value("crc", OURS, cpu) / value("crc", CHANNELS_ECHO, cpu),
        },
        "rtt_cpu_channels_echo_vs_websockets_echo": {
            "value": value("rtt", CHANNELS_ECHO, cpu) / value("rtt", WEBSOCKETS_ECHO, cpu),
        },
        "crc_cpu_channels_echo_vs_websockets_echo": {
            "value": value("crc", CHANNELS_ECHO, cpu) / value("crc", WEBSOCKETS_ECHO, cpu),
        },
    }
    return {"rows": rows, "ratios": ratios}


def print_report(summary: dict[str, Any], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.connections} connections, {args.repeats} interleaved repeats, medians "
        f"(rate range in brackets); server CPU = utime+stime of the server process"
    )
    header = (
        f"{'phase':<8} {'server':<16} {'ops/s':>8} {'[min - max]':>17} {'srv µs/op':>10} "
        f"{'[min - max]':>15} {'srv busy':>8} {'cli µs/op':>9}"
    )
    print(header)
    print("-" * len(header))
    for phase in PHASES:
        for server in SERVERS:
            row = summary["rows"].get(f"{phase}/{server}")
            if row is None:
                continue
            print(
                f"{phase:<8} {server:<16} {row['rate_median']:>8.0f} "
                f"[{row['rate_min']:>6.0f} - {row['rate_max']:>6.0f}] "
                f"{row['server_us_per_op_median']:>10.0f} "
                f"[{row['server_us_per_op_min']:>5.0f} - {row['server_us_per_op_max']:>5.0f}] "
                f"{row['server_busy_median']:>7.0%} {row['client_us_per_op_median']:>9.0f}"
            )
    print()
    for name, ratio in summary["ratios"].items():
        line = f"{name:<42} {ratio['value']:6.2f}"
        if "target" in ratio:
            per_repeat = ", ".join(f"{r:.2f}" for r in ratio["per_repeat"])
            verdict = "MET" if ratio["met"] else "MISSED"
            line += f"   target {ratio['target']:<7} {verdict:<7} per repeat: {per_repeat}"
        print(line)


async def benchmark(
    args: argparse.Namespace, servers: list[RunningServer], signer: SigningKey
) -> list[Sample]:
    generator = LoadGenerator(args, signer)
    by_name = {server.name: server for server in servers}
    plan = [(phase, server) for phase, (_, names) in PHASES.items() for server in names]
    for phase, name in plan:
        await generator.run_phase(phase, name, by_name[name].url, by_name[name].process.pid, warmup=True)
    samples = []
    for repeat in range(args.repeats):
        for phase, name in plan:
            server = by_name[name]
            ops, seconds, server_cpu, client_cpu = await generator.run_phase(
                phase, name, server.url, server.process.pid
            )
            sample = Sample(phase, name, repeat, ops, seconds, server_cpu, client_cpu)
            samples.append(sample)
            print(
                f"  repeat {repeat + 1}/{args.repeats} {phase:<6} {name:<16} {sample.ops:>6} ops "
                f"{sample.rate:>7.0f}/s  server {sample.server_us_per_op:>5.0f} µs/op "
                f"({sample.server_busy:.0%} busy)  client {sample.client_us_per_op:>5.0f} µs/op",
                flush=True,
            )
    return samples


def run_loop(coroutine):
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=16, help="concurrent client connections")
    parser.add_argument(
        "--rtt-per-conn", type=int, default=400, help="round trips per connection in an rtt phase"
    )
    parser.add_argument(
        "--handshakes-per-conn",
        type=int,
        default=25,
        help="connect/request(s)/close cycles per connection in a crc or signin phase",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="time bound of one phase")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats (medians reported)")
    parser.add_argument("--no-deflate", action="store_true", help="do not offer permessage-deflate")
    parser.add_argument("--json", type=Path, help="also write the samples, medians and ratios here")
    parser.add_argument("--keep-logs", type=Path, help="copy the server logs into this directory")
    experiments = parser.add_argument_group("what-if experiments on our server (default: as shipped)")
    experiments.add_argument(
        "--ours-app", default=OURS_APP, help=f"ASGI app uvicorn serves as ours (default {OURS_APP})"
    )
    experiments.add_argument(
        "--ours-env", action="append", default=[], metavar="KEY=VALUE", help="extra env for our server"
    )
    experiments.add_argument(
        "--database-query", default="", help="query string for our DATABASE_URL, e.g. conn_max_age=600"
    )
    args = parser.parse_args(argv)
    if any("=" not in item for item in args.ours_env):
        parser.error("--ours-env takes KEY=VALUE")
    if min(args.connections, args.rtt_per_conn, args.handshakes_per_conn, args.repeats) < 1:
        parser.error("counts must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    owner, member = named_key("bench-ws-owner"), named_key("bench-ws-member")
    started: list[RunningServer] = []
    with tempfile.TemporaryDirectory(prefix="ws-rpc-bench-") as tmp:
        workdir = Path(tmp)
        try:
            start_servers(workdir, owner, member, started, args)
            print(f"servers: {', '.join(f'{s.name} pid {s.process.pid}' for s in started)}", flush=True)
            samples = run_loop(benchmark(args, started, member))
        finally:
            for server in started:
                server.process.stop()
            keep_logs(workdir, args.keep_logs)
    summary = summarise(samples)
    print_report(summary, args)
    if args.json:
        document = {
            "command": " ".join([Path(sys.executable).name, "-m", "bench.ws_rpc", *(argv or sys.argv[1:])]),
            "machine": machine(),
            "source": source_revision("circles", "circleproject", "auth_secp"),
            "settings": {key: value for key, value in vars(args).items() if key not in ("json", "keep_logs")},
            "samples": [sample.as_dict() for sample in samples],
            **summary,
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
