"""Steady `play` load from many WebSocket clients and a steady stream of signed webhooks, recorded.

Used by the failover tests and by bench/failover.py: each `play` is recorded with when it was
sent, when (and how) it was answered, so the caller can check that every one was answered by its
deadline and measure how long the service gave no answers; each webhook with its HTTP status.
"""

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import websockets

from tests.helpers.keys import WalletKey
from tests.helpers.rpc import RpcClient
from tests.helpers.webhooks import dumps, stripe_event, stripe_signature

# Counts its runs per event: a value of 1 after everything settled means "applied exactly once".
COUNTING_SCRIPT = """
let seen = db::get("runs", EVENT.id) ?? #{n: 0};
db::put("runs", EVENT.id, #{n: seen.n + 1});
"""
# How long past its deadline an answer may come and still count as "by its deadline": the server
# answers a `play` whose result never came at the deadline plus its delivery grace (1 s), and the
# answer needs a moment to travel.
ANSWER_SLACK_SECONDS = 2.0


@dataclass(frozen=True)
class Play:
    """One `play` request: when it was sent and answered (monotonic), and its outcome."""

    sent: float
    answered: float
    outcome: str  # "ok", "timeout" (-32000 kind timeout), "-32012", "-32029", other codes, "closed", "silent"
    server: str
    client: int = 0  # which of the load's connections sent it (bench/failover.py's per-client gaps)


def outcome_of(response: dict) -> str:
    """A JSON-RPC response to `play` as an outcome name."""
    if "result" in response:
        return "ok"
    error = response.get("error") or {}
    code = error.get("code")
    if code == -32000 and (error.get("data") or {}).get("kind") == "timeout":
        return "timeout"
    return str(code)


@dataclass
class PlayLoad:
    """`clients` connections (spread over `urls`), each sending one `play` after another."""

    urls: list[str]
    key: WalletKey
    clients: int = 16
    timeout_ms: int = 4000
    pause: float = 0.02
    origin: str | None = None
    connect: dict = field(
        default_factory=dict
    )  # for websockets.connect: host/port to reach instead of the URL's
    plays: list[Play] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set (every client finishes the play it has in flight)."""
        await asyncio.gather(
            *(self._client(i, self.urls[i % len(self.urls)], stop) for i in range(self.clients))
        )

    async def _connect(self, url: str) -> RpcClient:
        client = RpcClient(await websockets.connect(url, origin=self.origin, open_timeout=10, **self.connect))
        await client.sign_in(self.key)
        return client

    async def _client(self, number: int, url: str, stop: asyncio.Event) -> None:
        client: RpcClient | None = None
        while not stop.is_set():
            if client is None:
                try:
                    client = await self._connect(url)
                except (OSError, websockets.WebSocketException, AssertionError, TimeoutError):
                    await asyncio.sleep(0.2)
                    continue
            sent = time.monotonic()
            wait = self.timeout_ms / 1000 + ANSWER_SLACK_SECONDS + 5.0  # beyond that it is "silent"
            try:
                response = await client.request(
                    "play", {"script": "40 + 2", "timeout_ms": self.timeout_ms}, timeout=wait
                )
                outcome = outcome_of(response)
            except TimeoutError:
                outcome = "silent"
            except websockets.WebSocketException:
                outcome, client = "closed", None
            self.plays.append(Play(sent, time.monotonic(), outcome, url, number))
            await asyncio.sleep(self.pause)
        if client is not None:
            await client.close()

    def late(self) -> list[Play]:
        """Plays answered after their deadline (plus the slack), or never."""
        limit = self.timeout_ms / 1000 + ANSWER_SLACK_SECONDS
        return [play for play in self.plays if play.outcome == "silent" or play.answered - play.sent > limit]

    def outcomes(self) -> Counter:
        """How many plays had each outcome."""
        return Counter(play.outcome for play in self.plays)

    def recovery(self, since: float) -> float | None:
        """Seconds from `since` until the first successful answer to a play sent after it."""
        answered = [play.answered for play in self.plays if play.sent >= since and play.outcome == "ok"]
        return min(answered) - since if answered else None

    async def until_settled(self, since: float, settle: float, timeout: float) -> None:
        """Wait until plays succeed again after `since` and have kept on for `settle` seconds more
        (or `timeout` seconds have passed: the caller's asserts then say what did not recover)."""
        deadline = since + timeout
        while time.monotonic() < deadline:
            recovered = self.recovery(since)
            if recovered is not None and time.monotonic() > since + recovered + settle:
                return
            await asyncio.sleep(0.2)

    def longest_silence(self, since: float) -> float:
        """The longest time after `since` without any successful answer."""
        times = sorted(
            play.answered for play in self.plays if play.outcome == "ok" and play.answered >= since
        )
        last, longest = since, 0.0
        for moment in times:
            longest, last = max(longest, moment - last), moment
        return longest


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float = 30) -> int:
    """POST `body`: the HTTP status, whatever the body (nginx answers HTML), 0 when nothing answered."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **headers}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:  # refused, reset, timed out: the provider would retry
        return 0


@dataclass
class WebhookLoad:
    """Signed Stripe events posted one after another (each a new event) to `url` from a thread."""

    url: str
    secret: str
    pause: float = 0.05
    headers: Callable[[], dict[str, str]] = dict
    answers: dict[str, int] = field(default_factory=dict)  # event id -> HTTP status
    sent_at: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start posting."""
        self._thread = threading.Thread(target=self._post_until_stopped, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop posting (waits for the delivery in flight)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def _post_until_stopped(self) -> None:
        while not self._stop.is_set():
            event = stripe_event(id=f"evt_failover_{uuid.uuid4().hex[:12]}")
            body = dumps(event)
            headers = {"Stripe-Signature": stripe_signature(body, self.secret), **self.headers()}
            self.sent_at[event["id"]] = time.monotonic()
            status = http_post(self.url, body, headers)
            self.answers[event["id"]] = status
            self._stop.wait(self.pause)

    def statuses(self) -> Counter:
        """How many deliveries got each HTTP status."""
        return Counter(self.answers.values())

    def stored(self) -> list[str]:
        """Event ids the server took responsibility for: 200 (queued) or 503 (stored, queued later)."""
        return [event_id for event_id, status in self.answers.items() if status in (200, 503)]


@dataclass(frozen=True)
class WebhookTally:
    """What the database says about the events a circle's provider was sent."""

    statuses: dict[str, str]  # event id -> WebhookEvent status (one row per event)
    rows: dict[str, int]  # event id -> rows (accepted ones; must be 1)
    runs: dict[str, int]  # event id -> the counting script's n (1: applied exactly once)

    def not_processed(self, event_ids: list[str]) -> list[str]:
        """Of `event_ids`, the ones not (yet) `processed`."""
        return [event_id for event_id in event_ids if self.statuses.get(event_id) != "processed"]

    def not_once(self, event_ids: list[str]) -> dict[str, tuple[int, int]]:
        """Of `event_ids`, the ones whose row or effect is not exactly one: id -> (rows, runs)."""
        counts = {
            event_id: (self.rows.get(event_id, 0), self.runs.get(event_id, 0)) for event_id in event_ids
        }
        return {event_id: count for event_id, count in counts.items() if count != (1, 1)}


def tally(query: Callable[..., list[tuple]], circle_id: int) -> WebhookTally:
    """Read the circle's webhook events and the counting script's records in two queries."""
    statuses: dict[str, str] = {}
    rows: Counter = Counter()
    for event_id, status in query(
        "SELECT event_id, status FROM webhooks_webhookevent WHERE circle_id = ?"
        " AND status NOT IN ('rejected', 'duplicate')",
        circle_id,
    ):
        statuses[event_id] = status
        rows[event_id] += 1
    runs = {
        key: (data if isinstance(data, dict) else json.loads(data))["n"]
        for key, data in query(
            "SELECT key, data FROM circles_record WHERE circle_id = ? AND collection = 'runs'", circle_id
        )
    }
    return WebhookTally(statuses, dict(rows), runs)
