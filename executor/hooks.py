"""Extension points of the executor, named in settings so the executor knows no app's internals.

- `CIRCLES_JOB_FINISHED_HOOKS`: callables `(job, outcome)` run after a job that belongs to
  something else (`job.event_id` set, i.e. a webhook event) has run, by a worker or in-process.
- `CIRCLES_WORKER_PERIODIC`: callables `()` every worker runs every
  `CIRCLES_WORKER_PERIODIC_SECONDS` (they must be safe with several workers at once).

A hook that raises is logged and never stops the worker (Redis away: one warning line, no traceback).
"""

import logging
from collections.abc import Callable
from functools import cache
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils.module_loading import import_string

from executor.jobs import Job
from executor.redis_clients import REDIS_DOWN

logger = logging.getLogger("executor.hooks")


@cache
def _load(paths: tuple[str, ...]) -> tuple[Callable[..., Any], ...]:
    return tuple(import_string(path) for path in paths)


def job_finished(job: Job, outcome: dict[str, Any]) -> None:
    """Tell the finished-job hooks how a job with an `event_id` ended (no-op for other jobs)."""
    if job.event_id is None:
        return
    for hook in _load(tuple(getattr(settings, "CIRCLES_JOB_FINISHED_HOOKS", ()))):
        try:
            hook(job, outcome)
        except Exception:
            logger.exception("job-finished hook %s failed for run %s", hook.__qualname__, job.run_id)


def periodic_every_seconds() -> float:
    """How often a worker runs the periodic callables."""
    return float(getattr(settings, "CIRCLES_WORKER_PERIODIC_SECONDS", 2.0))


def run_periodic() -> None:
    """Run each `CIRCLES_WORKER_PERIODIC` callable once."""
    for task in _load(tuple(getattr(settings, "CIRCLES_WORKER_PERIODIC", ()))):
        close_old_connections()
        try:
            task()
        except REDIS_DOWN as exc:  # an outage or a failover: one line, the next round runs it again
            logger.warning("periodic task %s: Redis away (%s); runs again next round", task.__qualname__, exc)
        except Exception:
            logger.exception("periodic task %s failed", task.__qualname__)
