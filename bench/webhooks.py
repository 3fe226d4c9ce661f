"""Webhook benchmark: verified Stripe deliveries per second into one server process, beside a bare DRF view.

One uvicorn process (DEBUG=0, SQLite in a temp dir, a private redis-server without persistence,
no workers: jobs are stored and enqueued, not run) serves both:

* webhook: `POST /webhooks/stripe/{circle}`, each request a new signed `payment_intent.succeeded`
  (Stripe-Signature made as Stripe does; bodies and headers are made before the timed phase);
  the answer must be 200 `queued`: verified, stored (one committed WebhookEvent row) and enqueued;
* bare: `POST /bare/`, a DRF APIView with the same settings that reads the body and answers 200.

The load generator is this process: `--connections` keep-alive HTTP/1.1 clients on asyncio. The
phases alternate (bare, webhook, bare, webhook, ...) `--repeats` times; medians are reported, with
the server's CPU per request (utime+stime of the uvicorn process). Target: webhook rate >= 0.5x bare.

    .venv/bin/python -m bench.webhooks [--connections 16] [--requests 3000] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import redis

from bench.helpers import cpu_seconds, named_key
from tests.helpers.processes import (
    PYTHON,
    ManagedProcess,
    free_port,
    manage,
    require_binary,
    server_env,
    wait_for_port,
)
from tests.helpers.webhooks import dumps, payment_intent, stripe_event, stripe_signature

SECRET = "whsec_bench"
TARGET = 0.5


def request_bytes(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, await reader.readexactly(length)


async def load(port: int, requests: list[bytes], connections: int, expect: bytes) -> float:
    """Send every request over `connections` keep-alive connections; requests per second."""
    queue = list(reversed(requests))

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                writer.write(queue.pop())
                status, body = await read_response(reader)
                if status != 200 or expect not in body:
                    raise RuntimeError(f"unexpected answer {status} {body[:200]!r}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return len(requests) / (time.perf_counter() - started)


def webhook_requests(circle: str, count: int) -> list[bytes]:
    requests = []
    for _ in range(count):
        body = dumps(stripe_event("payment_intent.succeeded", payment_intent()))
        headers = {"Stripe-Signature": stripe_signature(body, SECRET)}
        requests.append(request_bytes(f"/webhooks/stripe/{circle}", body, headers))
    return requests


def bare_requests(count: int) -> list[bytes]:
    body = dumps(stripe_event("payment_intent.succeeded", payment_intent()))
    return [request_bytes("/bare/", body, {"Stripe-Signature": stripe_signature(body, SECRET)})] * count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--requests", type=int, default=3000, help="per phase")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    redis_port = free_port()
    redis_server = ManagedProcess(
        [require_binary("redis-server"), "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(work)],
        env={}, log_path=work / "redis.log", cwd=work,
    )  # fmt: skip
    wait_for_port(redis_port, redis_server.process)
    circle = named_key("bench-webhooks").pubkey
    settings = {
        "DJANGO_SETTINGS_MODULE": "bench.webhooks_settings",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "CIRCLES_QUEUE_STREAM": "bench:webhooks",
        "CIRCLES_QUEUE_MAX_LENGTH": "100000000",
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
    }
    env = server_env(f"sqlite:///{work / 'bench.sqlite3'}", **settings)
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "create_circle", "--name", "bench", "--pubkey", circle)
    port = free_port()
    argv = [PYTHON, "-m", "uvicorn", "circleproject.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--no-access-log", "--lifespan", "off"]  # fmt: skip
    server = ManagedProcess(argv, env=env, log_path=work / "uvicorn.log")
    results: dict[str, list[tuple[float, float]]] = {"bare": [], "webhook": []}
    try:
        wait_for_port(port, server.process)
        queue = redis.Redis(port=redis_port)
        asyncio.run(load(port, bare_requests(200), args.connections, b"ok"))  # warm up both paths
        asyncio.run(load(port, webhook_requests(circle, 200), args.connections, b"queued"))
        for _ in range(args.repeats):
            for name in ("bare", "webhook"):
                if name == "bare":
                    requests, expect = bare_requests(args.requests), b"ok"
                else:
                    requests, expect = webhook_requests(circle, args.requests), b"queued"
                cpu_before = cpu_seconds(server.pid)
                rate = asyncio.run(load(port, requests, args.connections, expect))
                cpu_ms = (cpu_seconds(server.pid) - cpu_before) * 1000 / len(requests)
                results[name].append((rate, cpu_ms))
                print(f"{name:8s} {rate:8.0f} req/s  {cpu_ms:.3f} ms server CPU/request", flush=True)
        queued = queue.xlen("bench:webhooks")
    finally:
        server.stop()
        redis_server.stop()
    bare_rate = statistics.median(rate for rate, _ in results["bare"])
    hook_rate = statistics.median(rate for rate, _ in results["webhook"])
    summary = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "connections": args.connections,
        "requests_per_phase": args.requests,
        "repeats": args.repeats,
        "bare_rps": round(bare_rate),
        "webhook_rps": round(hook_rate),
        "bare_cpu_ms": round(statistics.median(cpu for _, cpu in results["bare"]), 3),
        "webhook_cpu_ms": round(statistics.median(cpu for _, cpu in results["webhook"]), 3),
        "ratio": round(hook_rate / bare_rate, 3),
        "target": TARGET,
        "jobs_enqueued": queued,
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    print("target met" if summary["ratio"] >= TARGET else "TARGET MISSED")


if __name__ == "__main__":
    main()
