"""The executor's Prometheus metrics: time per job in the workers, and the queue read at scrape time.

Workers observe `circles_job_seconds` per job (`observe_job`, `JOB_DEAD`); `QueueCollector`
reads the queue's length, pending jobs, dead letters, oldest job's age and live workers from
Redis each time `/metrics` is scraped (`circleproject.metrics` registers it when REDIS_URL is
set). Redis connection counters are defined beside the connections (`executor.redis_clients`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import redis
from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from executor.heartbeat import workers_alive
from executor.queue import JobQueue, QueueConfig
from executor.redis_clients import sync_client

JOB_SECONDS = Histogram(
    "circles_job_seconds",
    "Time a worker spent on one job, by outcome (ok, error, dead).",
    ["outcome"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
JOB_OK, JOB_ERROR, JOB_DEAD = (JOB_SECONDS.labels(outcome) for outcome in ("ok", "error", "dead"))


def observe_job(ok: bool, seconds: float) -> None:
    """A worker finished a job (ok or failed run)."""
    (JOB_OK if ok else JOB_ERROR).observe(seconds)


QUEUE_GAUGES = (
    ("circles_queue_length", "Jobs in the stream (queued or running)."),
    ("circles_queue_pending", "Jobs delivered and not acknowledged."),
    ("circles_queue_dead_letters", "Jobs in the dead-letter stream."),
    ("circles_queue_oldest_age_seconds", "Age of the oldest job in the stream (0 when empty)."),
    (
        "circles_workers_alive",
        "Workers with a heartbeat within its TTL and their named Redis connection open.",
    ),
)


class QueueCollector(Collector):
    """Queue length, pending, dead letters, oldest job's age and live workers, read from Redis at scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the queue gauges and `circles_redis_up` (0, and nothing else, when Redis is unreachable)."""
        try:
            queue = _job_queue(QueueConfig.from_settings())
            values = (
                queue.length(),
                queue.pending(),
                queue.dead_length(),
                queue.oldest_age_seconds(),
                workers_alive(queue.redis),
            )
        except (redis.RedisError, OSError):
            yield GaugeMetricFamily("circles_redis_up", "Whether Redis answered this scrape.", value=0)
            return
        yield GaugeMetricFamily("circles_redis_up", "Whether Redis answered this scrape.", value=1)
        for (name, text), value in zip(QUEUE_GAUGES, values, strict=True):
            yield GaugeMetricFamily(name, text, value=value)


@functools.cache
def _job_queue(config: QueueConfig) -> JobQueue:
    """The queue client of this process's scrapes (short timeouts: a scrape must not hang)."""
    return JobQueue(config, sync_client(config.url, timeout=1, connect_timeout=1))
