"""A worker's periodic tasks: Redis away is one warning line (a failover is expected), other
failures keep their traceback, and a failing task never keeps the next one from running."""

import logging

import pytest
import redis
from django.test import override_settings

from executor import hooks

ran: list[str] = []


def redis_away() -> None:
    ran.append("redis_away")
    raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def broken() -> None:
    ran.append("broken")
    raise RuntimeError("a bug")


def fine() -> None:
    ran.append("fine")


TASKS = [f"{__name__}.{name}" for name in ("redis_away", "broken", "fine")]


@override_settings(CIRCLES_WORKER_PERIODIC=TASKS)
def test_redis_away_is_one_warning_and_every_task_runs(caplog: pytest.LogCaptureFixture) -> None:
    ran.clear()
    with caplog.at_level(logging.WARNING, logger="executor.hooks"):
        hooks.run_periodic()
    assert ran == ["redis_away", "broken", "fine"]
    away, bug = caplog.records
    assert away.levelno == logging.WARNING and away.exc_info is None
    assert "redis_away: Redis away (Error 111" in away.getMessage()
    assert bug.levelno == logging.ERROR and bug.exc_info is not None and "broken failed" in bug.getMessage()
