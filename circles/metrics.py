"""The WebSocket face's Prometheus metrics: connections, sign-ins, RPC calls, `play` durations, live records.

Defined here, beside what they measure; the callers pass the labels in (this module knows
neither the method registry nor the consumer). `circleproject.metrics` serves them.
"""

import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge(
    "circles_connections_open", "Open circle WebSocket connections.", multiprocess_mode="livesum"
)
SIGN_INS = Counter("circles_sign_ins_total", "authenticate calls by outcome.", ["outcome"])
SIGN_IN_OK = SIGN_INS.labels("ok")
SIGN_IN_FAILED = SIGN_INS.labels("invalid")
RPC_CALLS = Counter(
    "circles_rpc_calls_total", "JSON-RPC calls answered, by method and code (0: success).", ["method", "code"]
)
PLAY_SECONDS = Histogram(
    "circles_play_seconds",
    "Time from a play reaching the executor to its answer (queue, run, delivery).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# Live records (circles.change_hub, circles.record_stream, circles.subscriptions). Counted per
# change and per subscription, never per frame on the fan-out's path.
RECORD_SUBSCRIBERS = Gauge(
    "circles_record_subscribers",
    "Open records subscriptions (watching a circle's change hub).",
    multiprocess_mode="livesum",
)
RECORD_DELIVERIES = Counter(
    "circles_record_deliveries_total",
    "Changes handed to records subscriptions by the change hub (one per change per subscription "
    "of its collection, before a key prefix filter).",
)
RECORD_GAP_FILLS = Counter(
    "circles_record_gap_fills_total",
    "Reads of the change log to fill a gap in a circle's changes (a lost or late pub/sub message).",
)
SLOW_READER_CLOSES = Counter(
    "circles_slow_reader_closes_total",
    "Connections closed 4408 because their notifications went unread past the bound.",
)

_rpc_children: dict[tuple[str, int], Any] = {}


def count_rpc(method: str, code: int, *, known: bool) -> None:
    """Count one answered call; a method name the registry does not know (`known` False) counts as
    "unknown", so a client cannot grow the label set."""
    child = _rpc_children.get((method, code))
    if child is None:
        child = RPC_CALLS.labels(method if known else "unknown", str(code))
        if known:  # bounded: registered methods x codes; unknown names are not cached
            _rpc_children[(method, code)] = child
    child.inc()


P = ParamSpec("P")
T = TypeVar("T")


def timed_play(call: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorate a play runner's `run`: observe its duration in `circles_play_seconds`.

    The decorated method keeps its signature (and stays a coroutine function), so the runners
    still conform to `circles.session.PlayRunner`.
    """

    @functools.wraps(call)
    async def timed(*args: P.args, **kwargs: P.kwargs) -> T:
        started = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        finally:
            PLAY_SECONDS.observe(time.perf_counter() - started)

    return timed
