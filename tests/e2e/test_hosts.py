"""The several-machines layout of deploy/README.md as several hosts: one network namespace per role.

Made and removed here (tests/helpers/netns.py): a private bridge on a free /24 of 10.213.0.0/16
with no route out, and seven hosts on it, each reaching the others only at their bridge
addresses (a host's 127.0.0.1 is its own):

    nginx     .10  the shipped site (deploy/nginx/circles.conf) on plain HTTP, upstreams .11 and .12
    asgi-1    .11  the shipped circles-asgi@.service command, --host set to the node's address
    asgi-2    .12  the same
    worker    .13  the shipped circles-worker.service command (--concurrency 2)
    redis-a   .21  the Redis master (deploy/redis/redis.conf) and a sentinel
    redis-b   .22  its replica and a sentinel
    db        .30  PostgreSQL and the third sentinel

Every process gets the shipped deploy/circles.env.example with only what a site must set changed
(secrets, DATABASE_URL, REDIS_*, CIRCLES_TRUSTED_PROXIES = nginx's address, local paths) and the
per-caller share lifted (load from one key). Clients and providers are the root namespace (.1),
talking to nginx with `Host: circles.example.org`. Checked: WebSocket clients are balanced over
both ASGI hosts, which see the client's own address (from nginx's X-Forwarded-For, a forged one
ignored); unlisted hosts and origins are refused; and with the master's host cut off (its link
taken down, its processes still running), plays are answered by their deadline, service is back
within the bound, every accepted webhook is processed once, and the old master, once its link is
back, is made a replica of the new one.
"""

import asyncio
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
import websockets

from tests.e2e.conftest import World, build_world
from tests.e2e.test_failover import DOCUMENTED_OUTCOMES, FAILOVER_BOUND_SECONDS, SETTLED_AFTER_SECONDS
from tests.e2e.test_production import _replace, nginx_binary, nginx_main_config
from tests.e2e.webhook_support import Database, create_circle
from tests.helpers.failover_load import COUNTING_SCRIPT, PlayLoad, WebhookLoad, tally
from tests.helpers.keys import WalletKey
from tests.helpers.netns import Host, HostNetwork
from tests.helpers.postgres_server import PostgresServer
from tests.helpers.processes import PYTHON, REPO, ManagedProcess, server_env
from tests.helpers.sentinel_cluster import Place, SentinelCluster

pytestmark = pytest.mark.e2e

SERVER_NAME = "circles.example.org"  # the shipped ALLOWED_HOSTS and CIRCLES_ALLOWED_ORIGINS
SECRET = "whsec_hosts_secret"
ASGI_PORT = 8001
FORGED = "203.0.113.9"


def shipped_env() -> dict[str, str]:
    """deploy/circles.env.example as systemd's EnvironmentFile reads it."""
    values = {}
    for line in (REPO / "deploy" / "circles.env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
    return values


def unit_command(unit: str, replacements: dict[str, str]) -> list[str]:
    """The ExecStart of a shipped unit, this checkout's Python instead of /opt/circles's."""
    line = next(
        line for line in (REPO / "deploy" / unit).read_text().splitlines() if line.startswith("ExecStart=")
    )
    argv = line.removeprefix("ExecStart=").split()
    assert argv[0] == "/opt/circles/.venv/bin/python", argv
    return [PYTHON, *(replacements.get(word, word) for word in argv[1:])]


def site_for_hosts(nginx: Host, asgi: list[Host]) -> str:
    """The shipped site on plain HTTP on nginx's address, upstream the ASGI hosts."""
    text = (REPO / "deploy" / "nginx" / "circles.conf").read_text()
    text = _replace(text, r"^server \{\n    listen 80;.*?^\}\n", "")
    text = _replace(text, r"^    listen 443 ssl http2;$", f"    listen {nginx.address}:80;")
    text = _replace(text, r"^    listen \[::\]:443 ssl http2;\n", "")
    text = _replace(text, r"^    ssl_[a-z_]+ [^\n]*\n", "", count=6)
    servers = "".join(
        f"    server {host.address}:{ASGI_PORT} max_fails=1 fail_timeout=5s;\n" for host in asgi
    )
    return _replace(text, r"^    server 127\.0\.0\.1:800\d [^\n]*\n(    server 127[^\n]*\n)*", servers)


class HostPostgres(PostgresServer):
    """The test PostgreSQL on a host of its own, listening on that host's bridge address."""

    def __init__(self, host: Host, network: HostNetwork) -> None:
        super().__init__()
        self.host, self.network, self.port = host, network, 5432

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@{self.host.address}:{self.port}/{database}"

    def start(self) -> None:
        import subprocess

        os.chown(self.directory, self.owner.pw_uid, self.owner.pw_gid)
        subprocess.run(
            self._as_postgres(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            ),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {self.network.network} trust\n")
        argv = [
            *self.host.prefix,
            *self._as_postgres(
                str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", f"listen_addresses={self.host.address}", "-c", "unix_socket_directories=",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_connections=200",
            ),
        ]  # fmt: skip
        self.process = ManagedProcess(argv, env={"LC_ALL": "C"}, log_path=self.directory / "postgres.log")
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                assert self.process.alive() and time.monotonic() < deadline, self.process.output()
                time.sleep(0.1)


@dataclass
class Layout:
    network: HostNetwork
    hosts: dict[str, Host]
    world: World
    cluster: SentinelCluster
    servers: dict[str, ManagedProcess]  # role -> ASGI process
    workers: ManagedProcess
    nginx: Host

    @property
    def base(self) -> str:
        return f"http://{self.nginx.address}"


def start_on(host: Host, argv: list[str], env: dict[str, str], log: Path) -> ManagedProcess:
    """Run `argv` on `host` (inside its namespace), in this checkout."""
    return ManagedProcess([*host.prefix, *argv], env=env, log_path=log)


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    directory = tmp_path_factory.mktemp("hosts")
    network = HostNetwork.create()  # NamespacesUnavailable fails the test, with the reason
    started: list[ManagedProcess] = []
    postgres = cluster = None
    try:
        roles = {
            "nginx": 10,
            "asgi-1": 11,
            "asgi-2": 12,
            "worker": 13,
            "redis-a": 21,
            "redis-b": 22,
            "db": 30,
        }
        hosts = {role: network.add(role, octet) for role, octet in roles.items()}
        postgres = HostPostgres(hosts["db"], network)
        postgres.start()
        world = build_world(postgres.create_database("hosts"))
        place = {
            role: Place(hosts[role].address, 6379, hosts[role].prefix) for role in ("redis-a", "redis-b")
        }
        sentinels = [
            Place(hosts[role].address, 26379, hosts[role].prefix) for role in ("redis-a", "redis-b", "db")
        ]
        cluster = SentinelCluster(directory / "redis", place["redis-a"], place["redis-b"], sentinels)
        cluster.start()

        def env_for(role: str) -> dict[str, str]:
            metrics = directory / f"metrics-{role}"
            metrics.mkdir(exist_ok=True)
            overrides = {
                "SECRET_KEY": "hosts-test-secret-key",
                "DATABASE_URL": world.database_url,
                **cluster.settings(),
                "CIRCLES_TRUSTED_PROXIES": hosts["nginx"].address,
                "STRIPE_WEBHOOK_SECRET": SECRET,
                "STATIC_ROOT": "",
                "WHITENOISE_USE_FINDERS": "1",
                "PROMETHEUS_MULTIPROC_DIR": str(metrics),
                "CIRCLES_ACCESS_LOG": "1",
                "CIRCLES_MAX_RUNS_PER_CALLER": "0",  # many clients of one key: load, not abuse
                "CIRCLES_MAX_WAITING_PER_CALLER": "0",  # (the circle's share may still line them up)
            }
            return server_env(world.database_url, **{**shipped_env(), **overrides})

        servers = {}
        for role in ("asgi-1", "asgi-2"):
            argv = unit_command(
                "circles-asgi@.service", {"127.0.0.1": hosts[role].address, "%i": str(ASGI_PORT)}
            )
            servers[role] = start_on(hosts[role], argv, env_for(role), directory / f"{role}.log")
            started.append(servers[role])
        workers = start_on(
            hosts["worker"],
            unit_command("circles-worker.service", {"4": "2"}),
            env_for("worker"),
            directory / "worker.log",
        )
        started.append(workers)
        nginx_dir = directory / "nginx"
        (nginx_dir / "temp").mkdir(parents=True)
        (nginx_dir / "circles.conf").write_text(
            site_for_hosts(hosts["nginx"], [hosts["asgi-1"], hosts["asgi-2"]])
        )
        (nginx_dir / "nginx.conf").write_text(nginx_main_config(nginx_dir, nginx_dir / "circles.conf"))
        argv = [
            nginx_binary(),
            "-p",
            str(nginx_dir),
            "-e",
            str(nginx_dir / "error.log"),
            "-c",
            str(nginx_dir / "nginx.conf"),
        ]
        started.append(start_on(hosts["nginx"], argv, {}, nginx_dir / "nginx.log"))
        deadline = time.monotonic() + 60
        for role in ("asgi-1", "asgi-2"):
            until_ready(f"http://{hosts[role].address}:{ASGI_PORT}", servers[role], deadline)
        yield Layout(network, hosts, world, cluster, servers, workers, hosts["nginx"])
    finally:
        for process in reversed(started):
            process.stop()
        if cluster is not None:
            cluster.stop()
        if postgres is not None:
            postgres.stop()
        network.close()


def until_ready(base: str, process: ManagedProcess, deadline: float) -> None:
    """Wait for /readyz 200 (database, Redis through the sentinels, a live worker) of one ASGI host."""
    while True:
        assert process.alive(), process.output()
        try:
            # A node checked at its own address still needs an allowed Host (deploy/README.md).
            request = urllib.request.Request(f"{base}/readyz", headers={"Host": SERVER_NAME})
            with urllib.request.urlopen(request, timeout=3) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        assert time.monotonic() < deadline, f"{base} not ready:\n{process.output()[-3000:]}"
        time.sleep(0.3)


def through_nginx(layout: Layout, path: str, host: str = SERVER_NAME) -> int:
    """The status of GET `path` sent to nginx with `Host: host`."""
    request = urllib.request.Request(f"{layout.base}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def handshake(layout: Layout, origin: str | None) -> int:
    """The HTTP status of a circle WebSocket handshake through nginx with `origin` (101: accepted)."""
    url = f"ws://{SERVER_NAME}/{layout.world.circle}"
    try:
        async with websockets.connect(
            url, origin=origin, host=layout.nginx.address, port=80, open_timeout=10
        ):
            return 101
    except websockets.InvalidStatus as exc:
        return exc.response.status_code


async def test_hosts_allowed_and_origins_through_nginx(layout: Layout) -> None:
    assert through_nginx(layout, "/healthz") == 200
    assert through_nginx(layout, "/healthz", host="evil.example") == 400  # not in ALLOWED_HOSTS
    assert through_nginx(layout, "/metrics") == 404  # the shipped site does not proxy it
    assert await handshake(layout, f"https://{SERVER_NAME}") == 101
    assert await handshake(layout, None) == 101  # native clients (CIRCLES_ALLOW_MISSING_ORIGIN=1)
    assert await handshake(layout, "https://evil.example") == 403


async def test_balanced_forwarded_and_failover_with_the_master_host_cut_off(layout: Layout) -> None:
    db = Database(layout.world)
    circle = create_circle(layout.world, "hosts", WalletKey.named("e2e-hosts").pubkey)
    db.set_endpoint(circle, "stripe", script=COUNTING_SCRIPT)
    plays = PlayLoad(
        [f"ws://{SERVER_NAME}/{layout.world.circle}"],
        layout.world.member,
        clients=12,
        origin=f"https://{SERVER_NAME}",
        connect={"host": layout.nginx.address, "port": 80},
    )
    hooks = WebhookLoad(
        f"{layout.base}/webhooks/stripe/{circle}",
        SECRET,
        headers=lambda: {"Host": SERVER_NAME, "X-Forwarded-For": FORGED},
    )
    master_host = layout.hosts["redis-a"]
    stop = asyncio.Event()
    load = asyncio.ensure_future(plays.run(stop))
    hooks.start()
    try:
        await asyncio.sleep(3)
        assert plays.outcomes()["ok"] > 20, plays.outcomes()
        layout.network.cut(master_host)  # its processes keep running; nothing reaches them
        cut = time.monotonic()
        survivors = layout.cluster.sentinels[1:]
        await asyncio.to_thread(layout.cluster.wait_for_new_master, layout.cluster.master, 30, survivors)
        await plays.until_settled(cut, SETTLED_AFTER_SECONDS + 2, timeout=45)
    finally:
        stop.set()
        await asyncio.wait_for(load, 30)
        hooks.stop()

    assert not plays.late(), plays.late()[:5]
    assert set(plays.outcomes()) <= DOCUMENTED_OUTCOMES, plays.outcomes()
    recovered = plays.recovery(cut)
    assert recovered is not None and recovered <= FAILOVER_BOUND_SECONDS, (recovered, plays.outcomes())
    settled = cut + recovered + SETTLED_AFTER_SECONDS
    after = [play for play in plays.plays if play.sent >= settled]
    assert after and all(play.outcome == "ok" for play in after), [p for p in after if p.outcome != "ok"][:5]

    # Balancing and the forwarded address: both ASGI hosts took WebSockets, from the client's own
    # address (10.213.x.1, from nginx's X-Forwarded-For; nginx's own address would mean no trust).
    client = re.escape(layout.network.gateway)
    for role, process in layout.servers.items():
        assert re.search(
            rf"{client}:\d+ - \"WebSocket /{layout.world.circle}\" \[accepted\]", process.output()
        ), role

    assert set(hooks.statuses()) <= {200, 503}, hooks.statuses()
    stored = hooks.stored()
    circle_id = db.circle_id(circle)
    deadline = time.monotonic() + 60
    while (pending := tally(db.query, circle_id).not_processed(stored)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert not pending, f"{len(pending)} of {len(stored)} not processed: {pending[:5]}"
    assert not tally(db.query, circle_id).not_once(stored)
    rows = db.query("SELECT DISTINCT remote_addr FROM webhooks_webhookevent WHERE circle_id = ?", circle_id)
    addresses = {str(address) for (address,) in rows}
    assert addresses == {layout.network.gateway}, addresses  # the provider's, never the forged header's

    # The old master's host comes back: the sentinels make it a replica of the new master.
    layout.network.mend(master_host)
    old = layout.cluster.node(layout.cluster.master)
    deadline = time.monotonic() + 40
    while True:
        try:
            if old.info("replication")["role"] == "slave":
                break
        except (redis.RedisError, OSError):
            pass  # still rejoining
        assert time.monotonic() < deadline, "the old master was not made a replica"
        await asyncio.sleep(0.5)
    print(
        f"hosts failover: answers again {recovered:.2f}s after the cut; plays {dict(plays.outcomes())};"
        f" webhooks {dict(hooks.statuses())}; {json.dumps(layout.cluster.master_address())}"
    )
