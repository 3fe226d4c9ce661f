"""Integration fixtures: a circle in the test database and a queue on the private Redis."""

import uuid

import pytest
from django.contrib.auth.models import User
from django.test import Client

from circles.models import Circle
from executor.jobs import Job
from executor.queue import JobQueue, QueueConfig
from executor.run_rows import save_runs
from executor.runner import run_job
from tests.helpers.keys import WalletKey
from tests.helpers.redis_server import RedisServer


@pytest.fixture
def circle(db) -> Circle:
    return Circle.objects.create(public_key=WalletKey.named("integration-circle").pubkey, name="integration")


@pytest.fixture
def queue_config(redis_server: RedisServer) -> QueueConfig:
    """A queue of its own (fresh stream names) on the session's Redis."""
    name = f"test:{uuid.uuid4().hex[:8]}"
    return QueueConfig(
        url=redis_server.url,
        stream=name,
        dead_stream=f"{name}:dead",
        max_length=5,
        claim_idle_ms=200,
        max_deliveries=2,
    )


@pytest.fixture
def queue(queue_config: QueueConfig) -> JobQueue:
    queue = JobQueue(queue_config)
    queue.ensure_group()
    yield queue
    queue.redis.delete(queue_config.stream, queue_config.dead_stream)
    queue.redis.close()


def make_job(
    circle: Circle,
    script: str = "40 + 2",
    *,
    timeout_ms: int = 5000,
    role: str = "member",
    source: str = "ws",
    **fields,
) -> Job:
    """A `play`-like job for `circle` (by a member unless told otherwise)."""
    return Job.for_timeout(
        circle_id=circle.id,
        circle_key=circle.public_key,
        caller_id=WalletKey.named("integration-member").pubkey,
        caller_role=role,
        source=source,
        script=script,
        timeout_ms=timeout_ms,
        **fields,
    )


def run_and_save(job: Job) -> dict:
    """Run `job` here and save its ScriptRun row (as the in-process executor does); its outcome."""
    report = run_job(job)
    save_runs([report.run_row()])
    return report.outcome


@pytest.fixture
def operator(db) -> Client:
    """A test client signed in to the admin as a superuser."""
    User.objects.create_superuser("operator", "op@example.org", "pw")
    client = Client()
    client.login(username="operator", password="pw")
    return client
