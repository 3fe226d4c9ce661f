"""The production layout end to end: nginx in front of two `circleproject.serve` processes.

Everything is real and started here: nginx (with the shipped site, deploy/nginx/circles.conf,
made to listen on plain HTTP on a free loopback port), two ASGI processes, two `rhai_worker`
processes, a Redis with AOF and the session's PostgreSQL. Clients and providers only ever talk
to nginx. Checked: clients are spread over both processes and all get their results; a signed
webhook is processed once and its client address comes through X-Forwarded-For; a Redis restart
while webhooks are being processed loses none (each ends `processed`, recorded once); a
SIGKILLed ASGI process sends its clients through nginx to the other one, where they sign in
again by themselves; a sign-in in the WebSocket URL leaves its query string in no access log.
"""

import asyncio
import json
import re
import shutil
import signal
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import websockets

from circles_client import CircleClient, ExecutionError, ExecutorUnavailable, SigningKey, connect
from tests.e2e.conftest import World
from tests.e2e.test_http_nonces import fetch_http_nonce
from tests.e2e.test_url_sign_in import signed_url
from tests.e2e.webhook_support import Database, create_circle, post, wait_for
from tests.helpers.keys import WalletKey
from tests.helpers.processes import (
    REPO,
    ManagedProcess,
    free_port,
    server_env,
    start_asgi_server,
    wait_for_port,
)
from tests.helpers.redis_server import RedisServer
from tests.helpers.webhooks import dumps, payment_intent, stripe_event, stripe_signature

pytestmark = pytest.mark.e2e

SHIPPED_SITE = REPO / "deploy" / "nginx" / "circles.conf"
SECRET = "whsec_production_secret"
UPSTREAM_HEADER = "X-Circles-Upstream"
# Counts its runs per event, and takes a little while, so a Redis restart lands mid-processing.
COUNTING_SCRIPT = """
let i = 0;
while i < 30000 { i += 1; }
let seen = db::get("runs", EVENT.id) ?? #{n: 0};
db::put("runs", EVENT.id, #{n: seen.n + 1});
"""


def nginx_binary() -> str:
    """nginx (Debian keeps it in /usr/sbin); a missing one fails loudly, never a skip."""
    path = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if path is None:
        raise RuntimeError("nginx is not installed: run `make test`, which installs it from Debian")
    return path


def _replace(text: str, pattern: str, replacement: str, count: int = 1) -> str:
    """Substitute `pattern` (a regex) exactly `count` times; the shipped file changed otherwise."""
    new, found = re.subn(pattern, replacement, text, flags=re.S | re.M)
    assert found == count, f"deploy/nginx/circles.conf no longer has {count} of {pattern!r} (found {found})"
    return new


def site_for_tests(listen_port: int, upstream_ports: list[int], access_log: Path) -> str:
    """The shipped site on plain HTTP: no port-80 redirect server, no TLS, our upstream ports,
    its access log (in its own format) at `access_log`.

    One header is added so the test can tell which ASGI process took a connection.
    """
    text = SHIPPED_SITE.read_text()
    text = _replace(text, r"^server \{\n    listen 80;.*?^\}\n", "")
    text = _replace(
        text,
        r"^    access_log /var/log/nginx/circles\.access\.log circles;$",
        f"    access_log {access_log} circles;",
    )
    text = _replace(text, r"^    listen 443 ssl http2;$", f"    listen 127.0.0.1:{listen_port};")
    text = _replace(text, r"^    listen \[::\]:443 ssl http2;\n", "")
    text = _replace(text, r"^    ssl_[a-z_]+ [^\n]*\n", "", count=6)
    servers = "".join(
        f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;\n" for port in upstream_ports
    )
    text = _replace(text, r"^    server 127\.0\.0\.1:800\d [^\n]*\n(    server 127[^\n]*\n)*", servers)
    return _replace(
        text,
        r"^    server_name circles\.example\.org;$",
        f"    server_name circles.example.org;\n    add_header {UPSTREAM_HEADER} $upstream_addr always;",
    )


def nginx_main_config(directory: Path, site: Path) -> str:
    """A foreground nginx whose pid, logs and temp files all live in `directory`."""
    temp = directory / "temp"
    return f"""
daemon off;
master_process on;
worker_processes 1;
user root;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {site};
}}
"""


@dataclass
class Production:
    world: World
    db: Database
    http: str  # nginx, http://127.0.0.1:PORT
    ws: str  # nginx, ws://127.0.0.1:PORT
    redis: RedisServer
    servers: dict[str, ManagedProcess]  # "127.0.0.1:PORT" -> the ASGI process on it
    workers: list[ManagedProcess]
    nginx: ManagedProcess
    server_env: dict[str, str]
    directory: Path
    started: list[ManagedProcess]  # everything stopped after the module

    def restart_server(self, address: str) -> None:
        """Start an ASGI process again on `address`'s port (after it was killed)."""
        self.servers[address].stop()
        port = int(address.split(":")[1])
        log = self.directory / f"asgi-{port}-{len(self.started)}.log"
        process, _ = start_asgi_server("serve", self.server_env, log, port=port)
        self.started.append(process)
        self.servers[address] = process


@pytest.fixture(scope="module")
def production(world: World, start_workers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    directory = tmp_path_factory.mktemp("production")
    redis = RedisServer(directory)  # AOF with appendfsync always, as deploy/README.md asks
    redis.start()
    started: list[ManagedProcess] = []
    try:
        settings = {
            "REDIS_URL": redis.url,
            "CIRCLES_QUEUE_STREAM": f"prod:{uuid.uuid4().hex[:8]}",
            "CIRCLES_QUEUE_CLAIM_IDLE_MS": "2000",
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "CIRCLES_TRUSTED_PROXIES": "127.0.0.1",
            "CIRCLES_WEBHOOK_SWEEP_SECONDS": "0.5",
            "CIRCLES_WEBHOOK_RETRY_BASE_SECONDS": "1",
            # The sweep re-queues an event whose job was lost after this lease (15 min in
            # production); short here, so that safety net acts within the test's patience.
            "CIRCLES_WEBHOOK_LEASE_SECONDS": "10",
            # Every client of this module signs in from 127.0.0.1, dozens of times a minute
            # (reconnects included): load, not abuse, so the per-address limit is raised.
            "CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE": "1000",
        }
        workers = [start_workers(**settings) for _ in range(2)]
        servers: dict[str, ManagedProcess] = {}
        env = server_env(world.database_url, CIRCLES_ACCESS_LOG="1", **settings)
        for index in range(2):
            process, port = start_asgi_server("serve", env, directory / f"asgi-{index}.log")
            started.append(process)
            servers[f"127.0.0.1:{port}"] = process

        nginx_dir = directory / "nginx"
        (nginx_dir / "temp").mkdir(parents=True)
        listen = free_port()
        site = nginx_dir / "circles.conf"
        upstream_ports = [int(address.split(":")[1]) for address in servers]
        site.write_text(site_for_tests(listen, upstream_ports, nginx_dir / "circles.access.log"))
        main = nginx_dir / "nginx.conf"
        main.write_text(nginx_main_config(nginx_dir, site))
        binary = nginx_binary()
        argv = [binary, "-p", str(nginx_dir), "-e", str(nginx_dir / "error.log"), "-c", str(main)]
        checked = ManagedProcess([*argv, "-t"], env={}, log_path=nginx_dir / "check.log")
        assert checked.process.wait(30) == 0, f"nginx -t failed:\n{checked.output()}"
        checked.stop()
        nginx = ManagedProcess(argv, env={}, log_path=nginx_dir / "nginx.log")
        started.append(nginx)
        wait_for_port(listen, nginx.process)
        yield Production(
            world=world,
            db=Database(world),
            http=f"http://127.0.0.1:{listen}",
            ws=f"ws://127.0.0.1:{listen}",
            redis=redis,
            servers=servers,
            workers=workers,
            nginx=nginx,
            server_env=env,
            directory=directory,
            started=started,
        )
    finally:
        for process in reversed(started):
            process.stop()
        redis.stop()


def key_of(wallet: WalletKey) -> SigningKey:
    return SigningKey.from_hex(wallet.private_hex)


def upstream_of(client: CircleClient) -> str:
    """The ASGI process (as nginx's upstream address) that took the client's current connection.

    nginx lists every upstream it tried ("dead:port, live:port"); the last one answered.
    """
    return client._connection._ws.response.headers[UPSTREAM_HEADER].split(",")[-1].strip()


async def signed_in_clients(production: Production, count: int) -> list[CircleClient]:
    url = f"{production.ws}/{production.world.circle}"
    return [await connect(url, key_of(production.world.member), reconnect_timeout=20) for _ in range(count)]


def processed(db: Database, event_id: str):
    return lambda: (event := db.event("stripe", event_id)) and event["status"] == "processed" and event


def http_status(url: str, body: bytes) -> int:
    """The status nginx (or the server behind it) answers a POST of `body` with."""
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def until_every_process_plays(production: Production, timeout: float = 20) -> None:
    """Clients on every ASGI process get `play` answered (after a Redis restart or a process restart,
    the queue connections and nginx's view of the upstreams come back within a few seconds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    answered: set[str] = set()
    while answered != set(production.servers):
        assert asyncio.get_running_loop().time() < deadline, f"only {answered} answered play"
        url = f"{production.ws}/{production.world.circle}"
        async with connect(url, key_of(production.world.member)) as client:
            try:
                if (await client.play("1", timeout_ms=3000))["value"] == 1:
                    answered.add(upstream_of(client))
            except (ExecutorUnavailable, ExecutionError) as exc:  # "1" fails only by no answer in time
                if isinstance(exc, ExecutionError) and "no result within" not in str(exc):
                    raise
                await asyncio.sleep(0.2)


# --- the tests (any order: each leaves both ASGI processes serving) -------------------------------


async def test_clients_are_spread_over_both_processes_and_all_play(production: Production) -> None:
    clients = await signed_in_clients(production, 6)
    try:
        assert {upstream_of(client) for client in clients} == set(production.servers)
        results = await asyncio.gather(
            *(client.play(f"let x = {i}; x * 7", timeout_ms=20_000) for i, client in enumerate(clients))
        )
        assert [result["value"] for result in results] == [index * 7 for index in range(6)]
        roles = await asyncio.gather(*(client.play("CALLER_ROLE") for client in clients))
        assert {role["value"] for role in roles} == {"member"}
    finally:
        for client in clients:
            await client.close()
    for process in production.servers.values():  # both processes' own logs show the handshakes
        assert f'"WebSocket /{production.world.circle}" [accepted]' in process.output()


async def test_a_url_sign_in_through_nginx_leaves_no_query_string_in_any_access_log(
    production: Production,
) -> None:
    world, member = production.world, production.world.member
    text = fetch_http_nonce(production.http, public_key=member.pubkey, circle=world.circle)["nonce"]
    url = signed_url(production.ws, world.circle, member, text)
    async with websockets.connect(url) as ws:
        await ws.send('{"jsonrpc": "2.0", "method": "whoami", "id": 1}')
        assert json.loads(await ws.recv())["result"]["authenticated"] is True
    access_log = production.directory / "nginx" / "circles.access.log"
    # nginx writes a WebSocket's line when it closes; the path is there, the query string is not.
    wait_for(lambda: f'GET /{world.circle} HTTP/1.1" 101 ' in access_log.read_text(), timeout=10)
    secrets = (member.sign(text), urllib.parse.quote(text), "sig=", "nonce=", "pubkey=")
    logs = [access_log, *(process.log_path for process in production.servers.values())]
    for log in logs:
        written = log.read_text(errors="replace")
        assert not [secret for secret in secrets if secret in written], log


def test_signed_webhook_through_nginx_is_processed_once(production: Production) -> None:
    db = production.db
    circle = create_circle(production.world, "prod-once", WalletKey.named("e2e-prod-once").pubkey)
    db.set_endpoint(circle, "stripe", script=COUNTING_SCRIPT)
    event = stripe_event("payment_intent.succeeded", payment_intent("pi_prod_once"))
    body = dumps(event)
    url = f"{production.http}/webhooks/stripe/{circle}"
    headers = {"Stripe-Signature": stripe_signature(body, SECRET), "X-Forwarded-For": "203.0.113.7"}
    assert post(url, body, headers) == (200, {"status": "queued", "event_id": event["id"]})
    assert post(url, body, headers) == (200, {"status": "duplicate", "event_id": event["id"]})
    row = wait_for(processed(db, event["id"]))
    assert row["attempts"] == 1 and row["script_run_id"]
    # The provider's address, not nginx's: the server trusts nginx's X-Forwarded-For entry.
    [(address,)] = db.query("SELECT remote_addr FROM webhooks_webhookevent WHERE id = ?", row["id"])
    assert str(address) == "203.0.113.7"
    wait_for(lambda: db.record(circle, "runs", event["id"]))
    assert db.record(circle, "runs", event["id"]) == {"n": 1}
    # nginx's body limits: 1 MiB for webhooks (beyond: nginx's own 413), 64 KiB elsewhere.
    assert http_status(url, b"x" * (1024 * 1024 + 1)) == 413
    assert http_status(f"{production.http}/{production.world.circle}", b"x" * (64 * 1024 + 1)) == 413


def test_redis_restart_while_processing_loses_no_webhook(production: Production) -> None:
    db = production.db
    circle = create_circle(production.world, "prod-restart", WalletKey.named("e2e-prod-restart").pubkey)
    db.set_endpoint(circle, "stripe", script=COUNTING_SCRIPT)
    url = f"{production.http}/webhooks/stripe/{circle}"
    events = [stripe_event(id=f"evt_prod_restart_{index}_{uuid.uuid4().hex[:6]}") for index in range(24)]
    answers: dict[str, int] = {}

    def deliver(batch: list[dict]) -> None:
        for event in batch:
            body = dumps(event)
            status, _ = post(url, body, {"Stripe-Signature": stripe_signature(body, SECRET)})
            answers[event["id"]] = status

    threads = [threading.Thread(target=deliver, args=(events[index::3],)) for index in range(3)]
    for thread in threads:
        thread.start()
    # Restart Redis once the first jobs are queued and while the rest are still being delivered
    # and run: deliveries meanwhile are stored and answered 503, queued jobs survive in the AOF.
    wait_for(lambda: len(answers) >= 6, timeout=30, interval=0.01)
    production.redis.stop()
    production.redis.start()
    for thread in threads:
        thread.join()
    assert len(answers) == len(events) and set(answers.values()) <= {200, 503}, answers
    accepted = [event for event in events if answers[event["id"]] == 200]
    assert len(accepted) >= 6

    def all_processed() -> bool:  # stored ones too: the sweep queues those answered 503
        return all(processed(db, event["id"])() for event in events)

    try:
        wait_for(all_processed, timeout=60, interval=0.3)
    except AssertionError:
        states = {event["id"]: (answers[event["id"]], db.event("stripe", event["id"])) for event in events}
        stuck = {key: value for key, value in states.items() if value[1]["status"] != "processed"}
        client = production.redis.client()
        stream = production.server_env["CIRCLES_QUEUE_STREAM"]
        queue = (client.xlen(stream), client.xpending(stream, "workers"), client.xlen(stream + ":dead"))
        raise AssertionError(f"not all processed: {stuck}; stream, pending, dead: {queue}") from None
    rows = db.query(
        "SELECT event_id, count(*) FROM webhooks_webhookevent WHERE circle_id = ?"
        " AND status NOT IN ('rejected', 'duplicate') GROUP BY event_id",
        db.circle_id(circle),
    )
    assert sorted(rows) == sorted((event["id"], 1) for event in events)
    # The handler ran for every event. Delivery is at least once (docs/WEBHOOKS.md): a job whose
    # acknowledgement (or whose XADD reply) was cut off by the restart is run again, so a script
    # that counts may see a second run; the event itself is recorded once and `processed`.
    runs = {event["id"]: (db.record(circle, "runs", event["id"]) or {"n": 0})["n"] for event in events}
    assert all(count >= 1 for count in runs.values()), runs
    # `play` comes back too (its first requests after the restart may answer "queue unavailable").
    asyncio.run(until_every_process_plays(production))


async def test_sigkilled_asgi_process_sends_its_clients_to_the_other(production: Production) -> None:
    clients = await signed_in_clients(production, 6)
    try:
        placed = {client: upstream_of(client) for client in clients}
        victim = placed[clients[0]]
        survivor = next(address for address in production.servers if address != victim)
        on_victim = [client for client in clients if placed[client] == victim]
        assert on_victim and len(on_victim) < len(clients)
        production.servers[victim].signal(signal.SIGKILL)
        # nginx closes the clients' side when their upstream connection dies; they reconnect (to
        # the survivor) by themselves, in the background, before anyone calls.
        await asyncio.wait_for(_until(lambda: all(client.reconnects == 1 for client in on_victim)), 20)
        results = await asyncio.gather(
            *(play_retrying(client, f"{index} + 100") for index, client in enumerate(clients))
        )
        assert [result["value"] for result in results] == [index + 100 for index in range(6)]
        for client in clients:
            assert upstream_of(client) == survivor
            assert client.reconnects == (1 if client in on_victim else 0)
            assert (await client.whoami())["role"] == "member"  # signed in again on the survivor
    finally:
        for client in clients:
            await client.close()
    production.restart_server(victim)
    await until_every_process_plays(production)  # nginx takes it back after fail_timeout


async def play_retrying(client: CircleClient, script: str) -> dict:
    """`play`, retried while the process answers "queue unavailable" (-32012) or no result in time:
    after a Redis restart (another test), a process's first plays may meet a queue connection gone
    stale, or a result published before its pub/sub subscription came back."""
    for _ in range(20):
        try:
            return await client.play(script, timeout_ms=3000)
        except (ExecutorUnavailable, ExecutionError) as exc:
            if isinstance(exc, ExecutionError) and "no result within" not in str(exc):
                raise
            await asyncio.sleep(0.2)
    return await client.play(script, timeout_ms=20_000)


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.05)
