"""The garbage collector of a server process, set for many long-lived connections.

An ASGI process holding ~1,000 WebSockets keeps millions of GC-tracked objects (each
connection's consumer, session, subscriptions, queues, tasks and uvicorn protocol). With
CPython's defaults (700, 10, 10) a fan-out to all of them makes enough short-lived containers
survive the young collections that a full (generation 2) collection comes every few seconds,
and each one walks every connection's objects: a 100-250 ms pause in the middle of a fan-out
(docs/benchmarks/live.md). A larger first threshold lets those objects die young instead of
being promoted; the full collections come far less often (each as long as before).

`CIRCLES_GC_THRESHOLDS` sets the three thresholds (`gc.set_threshold`); empty keeps CPython's.
`circleproject.serve` applies it in every server process before it serves.
"""

import gc
import logging

from django.conf import settings

logger = logging.getLogger("circleproject.gc_tuning")


def parse_thresholds(text: str) -> tuple[int, ...]:
    """The thresholds in `text` ("a,b,c": 1-3 non-negative integers); () for "": CPython's defaults."""
    if not text.strip():
        return ()
    values = tuple(int(part) for part in text.split(","))
    if not 1 <= len(values) <= 3 or any(value < 0 for value in values):
        raise ValueError(f"CIRCLES_GC_THRESHOLDS must be 1-3 non-negative integers, not {text!r}")
    return values


def tune_gc() -> None:
    """Apply `CIRCLES_GC_THRESHOLDS` to this process's collector."""
    thresholds = parse_thresholds(settings.CIRCLES_GC_THRESHOLDS)
    if thresholds:
        gc.set_threshold(*thresholds)
    logger.debug("gc thresholds %s", gc.get_threshold())
