"""/healthz, /readyz and /metrics against real servers (`circleproject.serve`), Redis and workers."""

import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis

from tests.e2e.conftest import World
from tests.e2e.webhook_support import wait_for
from tests.helpers.redis_server import RedisServer
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e


def get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """GET `path` on the server behind the ws:// URL `base`; (status, body)."""
    request = urllib.request.Request(base.replace("ws://", "http://") + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for_status(base: str, path: str, status: int, timeout: float = 20.0) -> dict:
    """Poll until `path` answers `status`; its JSON body."""
    deadline = time.monotonic() + timeout
    while True:
        got, body = get(base, path)
        if got == status:
            return json.loads(body)
        assert time.monotonic() < deadline, (got, body)
        time.sleep(0.2)


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory):
    """A Redis of this module's own: the readiness test stops and restarts it."""
    server = RedisServer(Path(tmp_path_factory.mktemp("health-redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def queue_settings(own_redis: RedisServer) -> dict[str, str]:
    return {"REDIS_URL": own_redis.url, "CIRCLES_QUEUE_STREAM": f"health:{uuid.uuid4().hex[:8]}"}


async def test_healthz_and_whoami_counted_in_metrics(start_server, world: World) -> None:
    server = start_server("serve")
    assert get(server, "/healthz") == (200, '{"status": "ok"}')
    status, body = get(server, "/readyz")  # embedded mode: the database only
    assert status == 200 and json.loads(body)["checks"] == {"database": "ok"}
    async with await RpcClient.connect(f"{server}/{world.circle}") as client:
        await client.call("whoami")
        await client.request("no_such_method")
        status, body = get(server, "/metrics")
        assert status == 200
        assert "circles_connections_open 1.0" in body
    assert 'circles_rpc_calls_total{code="0",method="whoami"} 1.0' in body
    assert 'circles_rpc_calls_total{code="-32601",method="unknown"} 1.0' in body
    assert "circles_play_seconds_bucket" in body and "circles_queue_length" not in body


async def test_metrics_refused_outside_the_allowed_networks_unless_the_token_is_sent(
    start_server, world: World
) -> None:
    server = start_server("serve", CIRCLES_METRICS_ALLOWED_IPS="10.0.0.0/8", CIRCLES_METRICS_TOKEN="s3cret")
    assert get(server, "/metrics")[0] == 403
    assert get(server, "/metrics", {"Authorization": "Bearer wrong"})[0] == 403
    status, body = get(server, "/metrics", {"Authorization": "Bearer s3cret"})
    assert status == 200 and "circles_sign_ins_total" in body


async def test_metrics_refused_for_a_forwarded_client_behind_a_trusted_proxy(start_server) -> None:
    server = start_server("serve", CIRCLES_TRUSTED_PROXIES="127.0.0.1")
    assert get(server, "/metrics", {"X-Forwarded-For": "203.0.113.9"})[0] == 403
    assert get(server, "/metrics")[0] == 200  # loopback itself, no forwarding: allowed by default


async def test_readyz_follows_workers_and_redis(
    start_server, start_workers, queue_settings, own_redis: RedisServer, world: World
) -> None:
    server = start_server("serve", **queue_settings, CIRCLES_WORKER_HEARTBEAT_TTL_SECONDS="3")
    body = wait_for_status(server, "/readyz", 503)
    assert body["failed"] == ["workers"] and body["checks"]["redis"] == "ok"

    start_workers(**queue_settings, CIRCLES_WORKER_HEARTBEAT_TTL_SECONDS="3")
    checks = wait_for_status(server, "/readyz", 200)["checks"]
    assert checks["workers"] == 1 and checks["job_slots"] == 0  # no job slots: still ready
    start_workers(**queue_settings, job_slots=2, CIRCLES_WORKER_HEARTBEAT_TTL_SECONDS="3")
    assert wait_for(lambda: wait_for_status(server, "/readyz", 200)["checks"]["job_slots"] == 2, timeout=15)
    async with await RpcClient.connect(f"{server}/{world.circle}") as client:
        await client.sign_in(world.member)
        assert (await client.call("play", {"script": "40 + 2"}, timeout=30))["value"] == 42
    _, metrics = get(server, "/metrics")
    assert 'circles_sign_ins_total{outcome="ok"} 1.0' in metrics
    assert "circles_play_seconds_count 1.0" in metrics
    assert "circles_queue_length" in metrics and "circles_queue_dead_letters 0.0" in metrics

    own_redis.stop()
    body = wait_for_status(server, "/readyz", 503)
    assert "redis" in body["failed"]
    own_redis.start()
    wait_for_status(server, "/readyz", 200)  # the worker reconnects and beats again


async def test_multiprocess_metrics_add_up_the_workers_samples(
    start_server, start_workers, queue_settings, world: World, tmp_path: Path
) -> None:
    """With PROMETHEUS_MULTIPROC_DIR shared, a server's /metrics includes what its workers observed."""
    shared = {**queue_settings, "CIRCLES_QUEUE_STREAM": f"multi:{uuid.uuid4().hex[:8]}"}
    shared["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    start_workers(**shared)
    server = start_server("serve", **shared)
    async with await RpcClient.connect(f"{server}/{world.circle}") as client:
        await client.sign_in(world.member)
        for _ in range(3):
            assert (await client.call("play", {"script": "6 * 7"}, timeout=30))["value"] == 42
    _, metrics = get(server, "/metrics")
    assert 'circles_job_seconds_count{outcome="ok"} 3.0' in metrics  # observed in the worker process
    assert "circles_play_seconds_count 3.0" in metrics  # observed in the server process


def child_pids(pid: int) -> list[int]:
    """The live children of process `pid` (Linux /proc)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def test_readyz_counts_only_live_workers(start_server, start_workers, queue_settings) -> None:
    """Killed worker processes stop counting at once, not when their heartbeat keys expire.

    `rhai_worker --concurrency 2` replaces a child that dies; five children are SIGKILLed in turn
    while every heartbeat key lives for 10 minutes: the two live ones are counted, not seven.
    """
    stream = f"health-live:{uuid.uuid4().hex[:8]}"
    shared = {**queue_settings, "CIRCLES_QUEUE_STREAM": stream, "CIRCLES_WORKER_HEARTBEAT_TTL_SECONDS": "600"}
    server = start_server("serve", **shared)
    supervisor = start_workers(concurrency=2, **shared)
    assert wait_for(lambda: wait_for_status(server, "/readyz", 200)["checks"]["workers"] == 2)
    client = redis.Redis.from_url(shared["REDIS_URL"])

    def beating(pid: int) -> bool:
        return bool(client.exists(f"{stream}:workers:{socket.gethostname()}-{pid}"))

    killed = []
    for _ in range(5):
        victim = child_pids(supervisor.pid)[0]
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)
        wait_for(
            lambda gone=victim: (pids := child_pids(supervisor.pid)) and gone not in pids and len(pids) == 2
        )
    live = child_pids(supervisor.pid)
    wait_for(lambda: all(beating(pid) for pid in live))
    assert all(beating(pid) for pid in killed)  # the dead ones' keys are all still there
    assert wait_for(lambda: wait_for_status(server, "/readyz", 200)["checks"]["workers"] == 2, timeout=10)
    client.close()
