"""Failover benchmark: the Redis master SIGKILLed under steady `play` load and signed webhooks.

    .venv/bin/python -m bench.failover [--repeats 3] [--clients 32] [--json out.json]

What runs, all on 127.0.0.1 free ports, all stopped at the end (issue 15's failover, measured):

* a private PostgreSQL (tests/helpers/postgres_server.py), migrated and filled as the e2e tests'
  database (`build_world`: a circle whose member plays);
* per repeat, fresh: a Redis master, its replica and three sentinels from the shipped
  deploy/redis/ files (tests/helpers/sentinel_cluster.py); two `python -m circleproject.serve`
  processes (two ASGI hosts, each its own port) and two `manage.py rhai_worker` processes, all
  finding the master through the sentinels (REDIS_SENTINELS, REDIS_SENTINEL_MASTER);
* `--generators` load processes, `--clients` WebSocket connections in all (spread over both ASGI
  processes), each signed in and sending `play("40 + 2")` (timeout_ms `--timeout-ms`) one after
  another with a `--pause` between (tests/helpers/failover_load.py's PlayLoad);
* one signed Stripe event after another (each a new event id; `--webhook-pause` between) to each
  ASGI process from a thread of this process (WebhookLoad), to a circle whose endpoint script
  counts its runs per event (one record per event: n = 1 means applied exactly once).

A repeat: `--warmup` s of load, `--before` s measured as the baseline, then SIGKILL to the
master's process group; the load goes on until every load process has had a play sent after the
kill answered, then `--settle` s, then `--after` s measured again; then everything stops and
the webhooks are counted from the database once their events are no longer `queued`.

Reported per repeat and as min/median/max over the repeats:

* *time without answers*: over all clients, the longest stretch with no successful answer around
  the kill (last `ok` answer before it → first after it), and from the kill to the first `ok`
  answer to a play sent after it (the bound docs/OPERATIONS.md states: 15 s); per client the same
  two figures (p50 and max over the clients); per ASGI process the first `ok` after the kill;
* *promotion*: from the kill until a sentinel names the replica as the master;
* *plays by outcome*: `ok`, `-32012`, `timeout`, other codes, `closed` (the connection dropped with
  the play in flight), and *lost*: never answered, or answered later than its deadline plus 2 s
  (ANSWER_SLACK_SECONDS): must be 0;
* *webhooks*: answers by HTTP status; accepted (200, or 503: stored) against `processed` rows;
  rows or effects not exactly one (duplicates or missing): must be 0;
* *the baseline in the same run*: ok plays/s and play latency p50/p99 in the window before the
  kill against the window after `--settle` (after/before ratios), webhooks accepted per second
  likewise;
* *answered as before again*: the first second after the kill that starts three seconds in a row
  with ok p50 at most 2x and ok plays/s at least 0.5x the baseline's, and the plays of the
  *recovering* stretch between the first answer and that second (the work the outage left
  queued: webhook events stored while Redis was away or queued again after the failover, in
  the same stream as the plays); the per-second series is in the JSON;
* *CPU* of each role (ASGI, workers, Redis, sentinels, PostgreSQL, the load processes) in both
  windows: share of a core and ms per ok play, so a machine busy with other work shows as such.

The exit status is 1 if a play was lost, an accepted webhook was not processed exactly once, or
the service was not answering again within the 15 s bound.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from bench.helpers import keep_logs, machine, percentile, source_revision, tree_cpu_seconds
from bench.ws_rpc import RATE_ENV
from tests.e2e.conftest import World, build_world
from tests.e2e.webhook_support import Database, create_circle
from tests.helpers.failover_load import COUNTING_SCRIPT, Play, PlayLoad, WebhookLoad, tally
from tests.helpers.keys import WalletKey
from tests.helpers.postgres_server import PostgresServer
from tests.helpers.processes import PYTHON, ManagedProcess, server_env, start_asgi_server
from tests.helpers.sentinel_cluster import SentinelCluster

BOUND_SECONDS = 15.0  # docs/OPERATIONS.md: `play` answered again within 15 s of the master's death
SECRET = "whsec_bench_failover"
# Plays answered ok in the last moment before the kill and the first after it: the gap is looked
# for from this long before the kill (a client whose play is slow at the kill still counts).
GAP_LOOKBACK_SECONDS = 5.0
# "Answered as before": a second whose ok plays' p50 is at most twice the baseline's and whose ok
# plays are at least half the baseline's rate.
NORMAL_P50_RATIO = 2.0
NORMAL_RATE_RATIO = 0.5
NORMAL_RUN = 3  # seconds in a row, so one noisy second neither ends nor extends the recovery


# --- the load processes ---------------------------------------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    """What one load process runs (picklable)."""

    urls: list[str]
    member_hex: str
    clients: int
    first_client: int
    timeout_ms: int
    pause: float


async def run_load(plan: LoadPlan, stop: Any, last_ok_sent: Synchronized) -> list[Play]:
    """Play until `stop` is set; keep `last_ok_sent` at the send time of the latest `ok` play."""
    load = PlayLoad(plan.urls, WalletKey(plan.member_hex), plan.clients, plan.timeout_ms, plan.pause)
    flag = asyncio.Event()

    async def watch() -> None:
        seen = 0
        while not stop.is_set():
            plays = load.plays
            for play in plays[seen:]:
                if play.outcome == "ok" and play.sent > last_ok_sent.value:
                    last_ok_sent.value = play.sent
            seen = len(plays)
            await asyncio.sleep(0.1)
        flag.set()

    watcher = asyncio.ensure_future(watch())
    await load.run(flag)
    await watcher
    return [Play(p.sent, p.answered, p.outcome, p.server, p.client + plan.first_client) for p in load.plays]


def load_process(plan: LoadPlan, stop: Any, last_ok_sent: Synchronized, out: Any) -> None:
    """Entry point of a load process: its plays as tuples on `out` when stopped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    plays = asyncio.run(run_load(plan, stop, last_ok_sent))
    out.put([(p.sent, p.answered, p.outcome, p.server, p.client) for p in plays])


@dataclass
class Loads:
    """The load processes, their stop flag and each one's latest `ok` play's send time."""

    processes: list[Any]
    stop: Any
    last_ok_sent: list[Synchronized]
    out: Any

    def all_answered_since(self, moment: float) -> bool:
        """Every load process has had a play sent after `moment` answered ok."""
        return all(value.value >= moment for value in self.last_ok_sent)

    def finish(self) -> list[Play]:
        """Stop them and collect every play."""
        self.stop.set()
        plays: list[Play] = []
        for _ in self.processes:
            plays += [Play(*row) for row in self.out.get(timeout=120)]
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.kill()
        return plays


def start_loads(urls: list[str], member: WalletKey, args: argparse.Namespace) -> Loads:
    context = multiprocessing.get_context("spawn")
    stop, out = context.Event(), context.Queue()
    processes, values = [], []
    per = [
        args.clients // args.generators + (i < args.clients % args.generators) for i in range(args.generators)
    ]
    first = 0
    for count in per:
        # Each process spreads its clients over both ASGI processes, starting at another one.
        plan = LoadPlan(
            urls[first % len(urls) :] + urls[: first % len(urls)],
            member.private_hex,
            count,
            first,
            args.timeout_ms,
            args.pause,
        )
        value = context.Value("d", 0.0)
        process = context.Process(target=load_process, args=(plan, stop, value, out), daemon=True)
        process.start()
        processes.append(process)
        values.append(value)
        first += count
    return Loads(processes, stop, values, out)


# --- the system under test ------------------------------------------------------------------


@dataclass
class Stack:
    """One repeat's Redis cluster, ASGI processes and workers."""

    cluster: SentinelCluster
    servers: list[ManagedProcess]
    urls: list[str]  # http://127.0.0.1:PORT
    workers: list[ManagedProcess]

    def stop(self) -> None:
        for process in [*self.servers, *self.workers]:
            process.stop(timeout=20)
        self.cluster.stop()


def start_stack(world: World, directory: Path) -> Stack:
    """Master, replica, three sentinels; two `circleproject.serve` and two `rhai_worker` processes."""
    cluster = SentinelCluster.on_loopback(directory / "redis")
    metrics = directory / "metrics"
    metrics.mkdir(parents=True)
    servers: list[ManagedProcess] = []
    workers: list[ManagedProcess] = []
    stack = Stack(cluster, servers, [], workers)
    try:
        cluster.start()
        settings = {
            **cluster.settings(),
            **RATE_ENV,
            "CIRCLES_QUEUE_STREAM": f"bench-failover:{uuid.uuid4().hex[:8]}",
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "CIRCLES_WEBHOOK_SWEEP_SECONDS": "0.5",
            # Load, not abuse: every client plays with one member's key in one circle.
            "CIRCLES_MAX_RUNS_PER_CALLER": "0",
            "CIRCLES_MAX_RUNS_PER_CIRCLE": "0",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            "LOG_LEVEL": "WARNING",
        }
        worker_env = server_env(world.database_url, **{**settings, "LOG_LEVEL": "INFO"})
        for index in range(2):
            argv = [PYTHON, "manage.py", "rhai_worker", "--concurrency", "1", "--job-slots", "0"]
            workers.append(ManagedProcess(argv, env=worker_env, log_path=directory / f"worker-{index}.log"))
        env = server_env(world.database_url, **settings)
        for index in range(2):
            process, port = start_asgi_server("serve", env, directory / f"asgi-{index}.log")
            servers.append(process)
            stack.urls.append(f"http://127.0.0.1:{port}")
    except BaseException:
        stack.stop()
        raise
    return stack


def cpu_by_role(stack: Stack, loads: Loads, postgres: PostgresServer) -> dict[str, float]:
    """CPU seconds so far of each role's processes (a dead one, the killed master, counts 0)."""

    def total(pids: list[int]) -> float:
        values = [tree_cpu_seconds(pid) for pid in pids]
        return sum(v for v in values if v == v)  # NaN: gone

    processes = stack.cluster.processes
    return {
        "asgi": total([p.pid for p in stack.servers]),
        "workers": total([p.pid for p in stack.workers]),
        "redis": total([p.pid for name, p in processes.items() if not name.startswith("sentinel")]),
        "sentinels": total([p.pid for name, p in processes.items() if name.startswith("sentinel")]),
        "load": total([p.pid for p in loads.processes if p.pid is not None]),
        "postgres": total([postgres.process.pid] if postgres.process else []),  # every backend too
    }


def cpu_window(start: dict[str, float], end: dict[str, float], seconds: float, ok: int) -> dict[str, Any]:
    """Each role's share of a core in a window, and its CPU ms per ok play."""
    used = {role: max(0.0, end[role] - start[role]) for role in start}
    return {
        "cores": {role: round(value / seconds, 2) for role, value in used.items()},
        "ms_per_ok_play": {role: round(1000 * value / ok, 2) if ok else None for role, value in used.items()},
    }


# --- the figures ----------------------------------------------------------------------------


def longest_gap(answers: list[float], killed: float) -> tuple[float, float, float] | None:
    """The longest stretch without an answer that ends after `killed`: (seconds, start, end), the
    start and end relative to the kill; None without an answer after the kill."""
    times = sorted(t for t in answers if t >= killed - GAP_LOOKBACK_SECONDS)
    best: tuple[float, float, float] | None = None
    for before, after in itertools.pairwise(times):
        if after > killed and (best is None or after - before > best[0]):
            best = (after - before, before - killed, after - killed)
    return best


def first_ok_after(plays: list[Play], killed: float) -> float | None:
    """Seconds from the kill to the first `ok` answer to a play sent after it."""
    answered = [p.answered for p in plays if p.sent >= killed and p.outcome == "ok"]
    return min(answered) - killed if answered else None


def spread(values: list[float]) -> dict[str, float | None]:
    """p50 and max, rounded; None for no values."""
    if not values:
        return {"p50": None, "max": None}
    return {"p50": round(percentile(values, 0.5), 2), "max": round(max(values), 2)}


def window(plays: list[Play], start: float, end: float) -> dict[str, Any]:
    """Plays sent in [start, end): ok plays/s and their latency p50/p99 in ms."""
    ok = [p.answered - p.sent for p in plays if start <= p.sent < end and p.outcome == "ok"]
    seconds = end - start
    return {
        "seconds": round(seconds, 2),
        "ok_plays": len(ok),
        "ok_per_s": round(len(ok) / seconds, 1) if seconds > 0 else None,
        "p50_ms": round(1000 * percentile(ok, 0.5), 2),
        "p99_ms": round(1000 * percentile(ok, 0.99), 2),
    }


def per_second(plays: list[Play], killed: float, start: float, end: float) -> list[dict[str, Any]]:
    """Per second of send time from `start` to `end` (relative to the kill): plays sent, ok ones,
    and the ok ones' p50 latency in ms."""
    rows = []
    for second in range(int(start), int(end) + 1):
        sent = [p for p in plays if second <= p.sent - killed < second + 1]
        ok = [p.answered - p.sent for p in sent if p.outcome == "ok"]
        rows.append(
            {
                "s": second,
                "sent": len(sent),
                "ok": len(ok),
                "p50_ms": round(1000 * percentile(ok, 0.5), 1) if ok else None,  # JSON has no NaN
            }
        )
    return rows


def normal_again(rows: list[dict[str, Any]], before: dict[str, Any]) -> int | None:
    """The first second after the kill that starts NORMAL_RUN seconds in a row answered as in the
    baseline (ok p50 at most NORMAL_P50_RATIO x its p50, ok plays at least NORMAL_RATE_RATIO x its
    rate); None if there is none."""
    after = [row for row in rows if row["s"] >= 0]

    def normal(row: dict[str, Any]) -> bool:
        return row["ok"] >= NORMAL_RATE_RATIO * (before["ok_per_s"] or 0) and row[
            "p50_ms"
        ] <= NORMAL_P50_RATIO * (before["p50_ms"] or 0)

    for index in range(len(after) - NORMAL_RUN + 1):
        if all(normal(row) for row in after[index : index + NORMAL_RUN]):
            return after[index]["s"]
    return None


def play_figures(plays: list[Play], killed: float, timeout_ms: int) -> dict[str, Any]:
    """Gaps (overall, per client, per ASGI process) and outcomes of a repeat's plays."""
    load = PlayLoad([], WalletKey("1" * 64), timeout_ms=timeout_ms, plays=plays)
    overall = longest_gap([p.answered for p in plays if p.outcome == "ok"], killed)
    by_client: dict[int, list[Play]] = collections.defaultdict(list)
    by_server: dict[str, list[Play]] = collections.defaultdict(list)
    for play in plays:
        by_client[play.client].append(play)
        by_server[play.server].append(play)
    client_gaps = [
        gap[0]
        for mine in by_client.values()
        if (gap := longest_gap([p.answered for p in mine if p.outcome == "ok"], killed))
    ]
    client_first = [
        first for mine in by_client.values() if (first := first_ok_after(mine, killed)) is not None
    ]
    outcomes = load.outcomes()
    lost = load.late()
    return {
        "gap_s": round(overall[0], 2) if overall else None,
        "gap_from_kill_s": [round(overall[1], 2), round(overall[2], 2)] if overall else None,
        "answers_again_after_kill_s": round(value, 2) if (value := first_ok_after(plays, killed)) else None,
        "per_client_gap_s": spread(client_gaps),
        "per_client_answers_again_s": spread(client_first),
        "clients_never_answered_again": len(by_client) - len(client_first),
        "per_server_answers_again_s": {
            url: round(value, 2) if (value := first_ok_after(mine, killed)) is not None else None
            for url, mine in sorted(by_server.items())
        },
        "plays": len(plays),
        "outcomes": dict(outcomes.most_common()),
        "lost": len(lost),
        "lost_examples": [
            asdict(p) | {"sent": round(p.sent - killed, 2), "answered": round(p.answered - killed, 2)}
            for p in lost[:5]
        ],
    }


def webhook_figures(
    db: Database, circle_id: int, hooks: list[WebhookLoad], windows: dict[str, tuple[float, float]]
) -> dict[str, Any]:
    """Answers by status; accepted vs processed rows; not exactly once. Waits (60 s at most) for
    the accepted events to leave `queued`."""
    statuses: collections.Counter[int] = collections.Counter()
    stored: list[str] = []
    sent_at: dict[str, float] = {}
    answers: dict[str, int] = {}
    for load in hooks:
        statuses.update(load.statuses())
        stored += load.stored()
        sent_at |= load.sent_at
        answers |= load.answers
    deadline = time.monotonic() + 60
    while (pending := tally(db.query, circle_id).not_processed(stored)) and time.monotonic() < deadline:
        time.sleep(0.5)
    final = tally(db.query, circle_id)
    not_once = final.not_once(stored)
    rates = {}
    for name, (start, end) in windows.items():
        accepted = sum(1 for e, t in sent_at.items() if start <= t < end and answers.get(e) == 200)
        rates[name] = round(accepted / (end - start), 1) if end > start else None
    return {
        "sent": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "accepted": len(stored),
        "processed": len(stored) - len(pending),
        "not_processed": len(pending),
        "duplicates": sum(1 for rows, runs in not_once.values() if rows > 1 or runs > 1),
        "not_exactly_once": len(not_once),
        "not_exactly_once_examples": dict(list(not_once.items())[:5]),
        "accepted_per_s": rates,
    }


# --- one repeat -----------------------------------------------------------------------------


def run_repeat(
    index: int, world: World, db: Database, postgres: PostgresServer, workdir: Path, args: argparse.Namespace
) -> dict:
    directory = workdir / f"repeat-{index}"
    stack = start_stack(world, directory)
    owner = WalletKey.named(f"bench-failover-hooks-{index}-{uuid.uuid4().hex[:6]}")
    circle = create_circle(world, f"failover-bench-{index}", owner.pubkey)
    db.set_endpoint(circle, "stripe", script=COUNTING_SCRIPT)
    ws_urls = [f"ws{url.removeprefix('http')}/{world.circle}" for url in stack.urls]
    hooks = [
        WebhookLoad(f"{url}/webhooks/stripe/{circle}", SECRET, pause=args.webhook_pause) for url in stack.urls
    ]
    loads: Loads | None = None
    try:
        loads = start_loads(ws_urls, world.member, args)
        for load in hooks:
            load.start()
        started = time.monotonic()
        while not loads.all_answered_since(started):  # every load process signed in and answered
            if time.monotonic() > started + 60:
                raise RuntimeError("the load processes got no answer within 60 s")
            time.sleep(0.1)
        time.sleep(args.warmup)
        before_start, cpu = time.monotonic(), {"before_start": cpu_by_role(stack, loads, postgres)}
        time.sleep(args.before)
        cpu["killed"] = cpu_by_role(stack, loads, postgres)
        os.killpg(stack.cluster.processes["master"].pid, signal.SIGKILL)
        killed = time.monotonic()
        print(f"repeat {index}: master killed at {time.strftime('%H:%M:%S')}", flush=True)
        promoted: dict[str, float] = {}

        def watch_promotion() -> None:
            stack.cluster.wait_for_new_master(stack.cluster.master, timeout=args.recovery_timeout)
            promoted["at"] = time.monotonic()

        watcher = threading.Thread(target=watch_promotion, daemon=True)
        watcher.start()
        while not loads.all_answered_since(killed) and time.monotonic() < killed + args.recovery_timeout:
            time.sleep(0.1)
        time.sleep(args.settle)
        after_start, cpu["after_start"] = time.monotonic(), cpu_by_role(stack, loads, postgres)
        time.sleep(args.after)
        after_end, cpu["after_end"] = time.monotonic(), cpu_by_role(stack, loads, postgres)
        plays = loads.finish()
        loads = None
        for load in hooks:
            load.stop()
        watcher.join(5)
    finally:
        if loads is not None:
            loads.finish()
        for load in hooks:
            load.stop()
        requeued = [w.output().count("queued webhook events due again") for w in stack.workers]
        tracebacks = sum(p.output().count("Traceback") for p in [*stack.servers, *stack.workers])
        stack.stop()
        keep_logs(directory, args.keep_logs / f"repeat-{index}" if args.keep_logs else None)
    figures = play_figures(plays, killed, args.timeout_ms)
    windows = {"before": (before_start, killed), "after": (after_start, after_end)}
    before, after = (window(plays, *windows[name]) for name in ("before", "after"))
    # Whole seconds after the kill only: the last, partial one would read as a drop in rate.
    rows = per_second(plays, killed, before_start - killed, after_end - killed - 1)
    normal = normal_again(rows, before)
    again = figures["answers_again_after_kill_s"]
    # From the first answer until answered as before: the backlog the outage left being worked off.
    recovering = (
        window(plays, killed + again, killed + normal)
        if again is not None and normal and normal > again
        else None
    )
    return {
        "promoted_after_kill_s": round(promoted["at"] - killed, 2) if "at" in promoted else None,
        **figures,
        "before": before,
        "after": after,
        "after_over_before": {
            key: round(after[key] / before[key], 2) if before[key] else None
            for key in ("ok_per_s", "p50_ms", "p99_ms")
        },
        "cpu": {
            "before": cpu_window(
                cpu["before_start"], cpu["killed"], killed - before_start, before["ok_plays"]
            ),
            "after": cpu_window(
                cpu["after_start"], cpu["after_end"], after_end - after_start, after["ok_plays"]
            ),
        },
        "webhooks": webhook_figures(db, db.circle_id(circle), hooks, windows),
        "workers_requeue_log_lines": requeued,
        "tracebacks_in_logs": tracebacks,
        "loadavg_at_end": os.getloadavg(),
        "per_second": rows,
        "normal_again_after_kill_s": normal,
        "recovering": recovering,
    }


def failed(result: dict[str, Any]) -> list[str]:
    """What a repeat broke of the promises (docs/OPERATIONS.md)."""
    problems = []
    if result["lost"]:
        problems.append(f"{result['lost']} plays lost")
    again = result["answers_again_after_kill_s"]
    if again is None or again > BOUND_SECONDS:
        problems.append(f"answers again after {again} s (bound {BOUND_SECONDS} s)")
    hooks = result["webhooks"]
    if hooks["not_exactly_once"]:
        problems.append(f"{hooks['not_exactly_once']} accepted webhooks not processed exactly once")
    return problems


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """min/median/max over the repeats of the headline figures."""

    def stats(values: list[float | None]) -> dict[str, float | None]:
        present = [v for v in values if v is not None]
        if not present:
            return {"min": None, "median": None, "max": None}
        return {"min": min(present), "median": round(statistics.median(present), 2), "max": max(present)}

    return {
        "gap_s": stats([r["gap_s"] for r in results]),
        "answers_again_after_kill_s": stats([r["answers_again_after_kill_s"] for r in results]),
        "promoted_after_kill_s": stats([r["promoted_after_kill_s"] for r in results]),
        "normal_again_after_kill_s": stats([r["normal_again_after_kill_s"] for r in results]),
        "recovering_p50_ms": stats([r["recovering"]["p50_ms"] if r["recovering"] else None for r in results]),
        "per_client_gap_max_s": stats([r["per_client_gap_s"]["max"] for r in results]),
        "after_over_before_ok_per_s": stats([r["after_over_before"]["ok_per_s"] for r in results]),
        "after_over_before_p50": stats([r["after_over_before"]["p50_ms"] for r in results]),
        "after_over_before_p99": stats([r["after_over_before"]["p99_ms"] for r in results]),
        "lost_plays": sum(r["lost"] for r in results),
        "webhooks_accepted": sum(r["webhooks"]["accepted"] for r in results),
        "webhooks_not_exactly_once": sum(r["webhooks"]["not_exactly_once"] for r in results),
        "webhooks_duplicates": sum(r["webhooks"]["duplicates"] for r in results),
    }


def print_repeat(index: int, r: dict[str, Any]) -> None:
    hooks = r["webhooks"]
    print(f"\nrepeat {index}:")
    print(
        f"  promoted {r['promoted_after_kill_s']} s after the kill; answers again after "
        f"{r['answers_again_after_kill_s']} s; longest gap {r['gap_s']} s (from {r['gap_from_kill_s']})"
    )
    print(
        f"  per client: gap {r['per_client_gap_s']}, answers again {r['per_client_answers_again_s']}; "
        f"per ASGI process: {list(r['per_server_answers_again_s'].values())}"
    )
    print(f"  plays {r['plays']}: {r['outcomes']}; lost {r['lost']}")
    print(f"  answered as before (p50 <= 2x, rate >= 0.5x) from {r['normal_again_after_kill_s']} s")
    for name in ("before", "recovering", "after"):
        w = r[name]
        if w is None:
            continue
        print(f"  {name:<10} {w['ok_per_s']:>7} ok/s  p50 {w['p50_ms']:7.2f} ms  p99 {w['p99_ms']:8.2f} ms")
    print(f"  after / before: {r['after_over_before']}")
    for name in ("before", "after"):
        print(f"  {name:<6} cores {r['cpu'][name]['cores']}  ms/ok play {r['cpu'][name]['ms_per_ok_play']}")
    print(
        f"  webhooks: {hooks['statuses']}; accepted {hooks['accepted']}, processed {hooks['processed']}, "
        f"duplicates {hooks['duplicates']}, not exactly once {hooks['not_exactly_once']}; "
        f"accepted/s {hooks['accepted_per_s']}"
    )
    load = tuple(round(x, 1) for x in r["loadavg_at_end"])
    print(f"  load average {load}; tracebacks in the logs {r['tracebacks_in_logs']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="failovers, each on a fresh Redis cluster")
    parser.add_argument("--clients", type=int, default=32, help="WebSocket connections playing, in all")
    parser.add_argument("--generators", type=int, default=2, help="load processes sharing the clients")
    parser.add_argument("--timeout-ms", type=int, default=4000, help="each play's timeout_ms")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds a client waits between plays")
    parser.add_argument(
        "--webhook-pause", type=float, default=0.05, help="seconds between webhooks, each ASGI"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before the baseline")
    parser.add_argument("--before", type=float, default=10.0, help="baseline window before the kill")
    parser.add_argument(
        "--settle", type=float, default=15.0, help="seconds after the first answers before measuring again"
    )
    parser.add_argument("--after", type=float, default=10.0, help="window measured after recovery")
    parser.add_argument("--recovery-timeout", type=float, default=60.0, help="give up waiting for answers")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep-logs", type=Path, help="copy the process logs into this directory")
    args = parser.parse_args(argv)
    if min(args.repeats, args.clients, args.generators) < 1 or args.generators > args.clients:
        parser.error("counts must be positive, and at most one load process per client")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: list[dict[str, Any]] = []
    wall = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="failover-bench-") as tmp:
        postgres = PostgresServer()
        try:
            postgres.start()
            world = build_world(postgres.create_database("failover"))
            db = Database(world)
            for index in range(args.repeats):
                results.append(run_repeat(index, world, db, postgres, Path(tmp), args))
                print_repeat(index, results[-1])
        finally:
            with contextlib.suppress(Exception):
                postgres.stop()
    document = {
        "command": " ".join(["python -m bench.failover", *(argv if argv is not None else sys.argv[1:])]),
        "settings": {k: str(v) for k, v in vars(args).items() if k not in ("json", "keep_logs")},
        "machine": machine(),
        "source": source_revision("circles", "circleproject", "executor", "webhooks"),
        "wall_s": round(time.monotonic() - wall),
        "summary": summary(results),
        "repeats": results,
    }
    print(f"\nsummary over {len(results)} repeats: {json.dumps(document['summary'])}")
    problems = [f"repeat {i}: {p}" for i, r in enumerate(results) for p in failed(r)]
    print("promises kept" if not problems else "BROKEN: " + "; ".join(problems))
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
