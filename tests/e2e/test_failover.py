"""Redis Sentinel failover under load, end to end, on one machine (the several-hosts version is
tests/e2e/test_hosts.py).

Real processes, all started here: a Redis master and its replica and three sentinels from the
shipped deploy/redis/ files (with a password; REDIS_URL carries only it and the database), two
`circleproject.serve` processes and two `rhai_worker` processes that find the master through the
sentinels, the session's PostgreSQL. Under a steady `play` load and a steady stream of signed
webhooks, the replica is made to fall behind for a moment (so the writes of that moment exist only
on the master, as asynchronous replication allows) and the master is SIGKILLed. Then, as
docs/OPERATIONS.md ("What a failover may and may not do") promises:

- every `play` is answered by its deadline: its result, -32012 or `timeout`; none is silent;
- the service answers `play` again within FAILOVER_BOUND_SECONDS of the kill, and every play sent
  a few seconds after that succeeds;
- every accepted webhook (200, or 503: stored) ends `processed`, one row, its effect applied
  once, though the jobs of the lost moment never reached the new master (queued again from
  PostgreSQL at once, not after the 15-minute lease);
- every metric the Grafana dashboard and the alert rules in deploy/grafana/ name is in a real
  /metrics scrape, the failover's own counters included.
"""

import asyncio
import json
import os
import re
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import yaml

from tests.e2e.conftest import World
from tests.e2e.webhook_support import Database, create_circle
from tests.helpers.failover_load import COUNTING_SCRIPT, PlayLoad, WebhookLoad, tally
from tests.helpers.keys import WalletKey
from tests.helpers.processes import REPO, ManagedProcess, server_env, start_asgi_server
from tests.helpers.sentinel_cluster import SentinelCluster

pytestmark = pytest.mark.e2e

SECRET = "whsec_failover_secret"
FAILOVER_BOUND_SECONDS = 15.0  # docs/OPERATIONS.md states it; measured figures in docs/BENCHMARKS.md
SETTLED_AFTER_SECONDS = 5.0
# What a play in flight may get during a failover (docs/OPERATIONS.md): its result, -32012
# (Redis away), -32000 `timeout` (queued, its answer lost), -32029 (its caller's or circle's share
# still counts runs the failover lost, until their deadlines).
DOCUMENTED_OUTCOMES = {
    "ok",
    "-32012",
    "timeout",
    "-32029",
}  # after the first answer, every play sent this much later succeeds
GRAFANA = REPO / "deploy" / "grafana"


@dataclass
class System:
    world: World
    cluster: SentinelCluster
    servers: list[str]  # http://127.0.0.1:PORT
    workers: list[ManagedProcess]
    env: dict[str, str]


def failover_settings(cluster: SentinelCluster, metrics_dir: Path) -> dict[str, str]:
    """The settings of every server and worker of a failover test (production defaults otherwise)."""
    return {
        **cluster.settings(),
        "CIRCLES_QUEUE_STREAM": f"failover:{uuid.uuid4().hex[:8]}",
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "CIRCLES_WEBHOOK_SWEEP_SECONDS": "0.5",
        # Load, not abuse: many plays from one key and one address.
        "CIRCLES_MAX_RUNS_PER_CALLER": "0",
        "CIRCLES_MAX_WAITING_PER_CALLER": "0",  # (the circle's share may still line them up)
        "CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE": "100000",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }


@pytest.fixture(scope="module")
def system(world: World, start_workers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    directory = tmp_path_factory.mktemp("failover")
    cluster = SentinelCluster.on_loopback(directory / "redis")
    metrics_dir = directory / "metrics"
    metrics_dir.mkdir()
    started: list[ManagedProcess] = []
    try:
        cluster.start()
        settings = failover_settings(cluster, metrics_dir)
        workers = [start_workers(**settings) for _ in range(2)]
        env = server_env(world.database_url, **settings)
        servers = []
        for index in range(2):
            process, port = start_asgi_server("serve", env, directory / f"asgi-{index}.log")
            started.append(process)
            servers.append(f"http://127.0.0.1:{port}")
        yield System(world, cluster, servers, workers, env)
    finally:
        for process in started:
            process.stop()
        cluster.stop()


def hold_replication(cluster: SentinelCluster, seconds: float) -> threading.Thread:
    """Keep the replica from applying the master's writes for `seconds` (DEBUG SLEEP, in a thread)."""
    client = redis.Redis(
        cluster.replica.address,
        cluster.replica.port,
        password="failover-test-password",
        socket_timeout=seconds + 5,
    )
    thread = threading.Thread(target=client.execute_command, args=("DEBUG", "SLEEP", seconds), daemon=True)
    thread.start()
    return thread


@dataclass
class FailoverRun:
    """What happened while the master was SIGKILLed under load (the `failed_over` fixture)."""

    db: Database
    circle: str
    plays: PlayLoad
    hooks: WebhookLoad
    killed: float  # time.monotonic() of the kill


@pytest.fixture(scope="module")
async def failed_over(system: System) -> FailoverRun:
    """Steady plays and webhooks, the replica held back for a moment, the master SIGKILLed, and the
    load kept on until the plays settle; once per module, for every test that needs a failover."""
    db = Database(system.world)
    circle = create_circle(system.world, "failover", WalletKey.named("e2e-failover").pubkey)
    db.set_endpoint(circle, "stripe", script=COUNTING_SCRIPT)
    plays = PlayLoad(
        [f"ws{url.removeprefix('http')}/{system.world.circle}" for url in system.servers], system.world.member
    )
    hooks = WebhookLoad(f"{system.servers[0]}/webhooks/stripe/{circle}", SECRET)
    stop = asyncio.Event()
    load = asyncio.ensure_future(plays.run(stop))
    hooks.start()
    try:
        await asyncio.sleep(3)
        assert plays.outcomes()["ok"] > 20, plays.outcomes()
        held = hold_replication(system.cluster, 1.5)
        await asyncio.sleep(1.0)  # writes of this second reach only the master
        os.killpg(system.cluster.processes["master"].pid, signal.SIGKILL)
        killed = time.monotonic()
        await asyncio.to_thread(system.cluster.wait_for_new_master, system.cluster.master)
        await plays.until_settled(killed, SETTLED_AFTER_SECONDS + 2, timeout=40)
    finally:
        stop.set()
        await asyncio.wait_for(load, 30)
        hooks.stop()
    held.join(5)
    return FailoverRun(db, circle, plays, hooks, killed)


async def test_master_killed_under_load(system: System, failed_over: FailoverRun) -> None:
    db, circle, plays, hooks, killed = (
        failed_over.db,
        failed_over.circle,
        failed_over.plays,
        failed_over.hooks,
        failed_over.killed,
    )
    # Plays: answered by their deadline, with a documented outcome.
    assert not plays.late(), plays.late()[:5]
    assert set(plays.outcomes()) <= DOCUMENTED_OUTCOMES, plays.outcomes()
    recovered = plays.recovery(killed)
    assert recovered is not None and recovered <= FAILOVER_BOUND_SECONDS, (recovered, plays.outcomes())
    assert plays.longest_silence(killed) <= FAILOVER_BOUND_SECONDS
    settled = killed + recovered + SETTLED_AFTER_SECONDS
    after = [play for play in plays.plays if play.sent >= settled]
    assert after and all(play.outcome == "ok" for play in after), [p for p in after if p.outcome != "ok"][:5]
    assert {play.server for play in after} == set(plays.urls)  # both ASGI processes serve again

    # Webhooks: every accepted one processed, one row, applied once, lost jobs included.
    assert set(hooks.statuses()) <= {200, 503}, hooks.statuses()
    stored = hooks.stored()
    circle_id = db.circle_id(circle)
    deadline = time.monotonic() + 60
    while (pending := tally(db.query, circle_id).not_processed(stored)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert not pending, f"{len(pending)} of {len(stored)} not processed: {pending[:5]}"
    assert not tally(db.query, circle_id).not_once(stored)
    for server in system.servers:  # /readyz: Redis through the sentinels, both workers' heartbeats
        with urllib.request.urlopen(f"{server}/readyz", timeout=10) as response:
            assert json.loads(response.read())["checks"]["workers"] == 2
    requeued = [w.output() for w in system.workers if "queued webhook events due again" in w.output()]
    assert requeued, "no worker queued again the events whose jobs the new master never saw"
    print(
        f"failover: answers again after {recovered:.2f}s;"
        f" plays {dict(plays.outcomes())}; webhooks {dict(hooks.statuses())}"
    )


# --- the dashboard and the alert rules name only metrics that exist -------------------------------


def metric_names(expression: str) -> set[str]:
    """The `circles_*` metric names a PromQL expression uses."""
    return set(re.findall(r"\b(circles_[a-z0-9_]+)", expression))


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the shipped Grafana dashboard's panels."""
    dashboard = json.loads((GRAFANA / "circles-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def alert_expressions() -> list[str]:
    """Every expression of the shipped Prometheus alert rules."""
    rules = yaml.safe_load((GRAFANA / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def scraped_names(url: str) -> set[str]:
    """The sample names (histogram `_bucket`/`_sum`/`_count` included) of a real /metrics answer."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }


def test_dashboard_and_alerts_name_only_scraped_metrics(system: System, failed_over: FailoverRun) -> None:
    dashboard, alerts = dashboard_expressions(), alert_expressions()
    assert len(dashboard) >= 10 and len(alerts) >= 4
    named = set().union(*(metric_names(expression) for expression in dashboard + alerts))
    scraped = scraped_names(system.servers[1])  # after a failover: every counter has counted
    assert not named - scraped, f"named but not in /metrics: {sorted(named - scraped)}"
    # The operator's questions are all there: connections, sign-ins, play latency, queue depth and
    # age, workers, webhook outcomes and retries, Redis reconnects and failovers.
    for needed in (
        "circles_connections_open",
        "circles_sign_ins_total",
        "circles_play_seconds_bucket",
        "circles_queue_length",
        "circles_queue_oldest_age_seconds",
        "circles_workers_alive",
        "circles_webhook_events_total",
        "circles_redis_connects_total",
        "circles_redis_master_changes_total",
    ):
        assert needed in named, needed
