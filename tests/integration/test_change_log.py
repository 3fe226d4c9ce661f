"""The write side of live records: committed db::put/db::delete become numbered changes, published after
the commit (PostgreSQL in process, SQLite in a process of its own, Redis for real)."""

import time
import uuid
from types import SimpleNamespace

import orjson
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from circles.changes import change_object
from circles.circle_file import CircleSpec
from circles.circle_loader import load_circles
from circles.models import ChangeCounter, Circle, Record, RecordChange
from circles.play import new_job
from circles.roles import Role
from executor import change_feed, job_store
from executor.job_rules import JobLimits, check_spec
from executor.job_runs import job_for, run_record
from executor.job_store import Viewer
from executor.queue import JobQueue, QueueConfig
from executor.runner import run_job
from executor.worker import Worker
from tests.helpers.keys import WalletKey
from tests.helpers.processes import manage, server_env
from tests.helpers.redis_server import RedisServer
from tests.integration import change_log_checks as checks
from tests.integration.conftest import make_job

MEMBER = WalletKey.named("changes-member")


def another_circle(name: str) -> Circle:
    return Circle.objects.create(public_key=WalletKey.named(f"changes-{name}").pubkey, name=name)


@pytest.fixture
def embedded(settings):
    """No REDIS_URL: changes go to this process's sinks."""
    settings.REDIS_URL = ""
    return settings


# --- on PostgreSQL, in this process ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_get_gap_free_numbers_in_commit_order(circle, embedded) -> None:
    checks.check_concurrent_writers_get_gap_free_numbers_in_commit_order(circle)


@pytest.mark.django_db(transaction=True)
def test_a_run_that_throws_after_a_put_leaves_no_change_and_no_number(circle, embedded) -> None:
    checks.check_a_run_that_throws_after_a_put_leaves_no_change_and_no_number(circle)


@pytest.mark.django_db(transaction=True)
def test_a_delete_is_a_change_and_deleting_nothing_is_none(circle, embedded) -> None:
    checks.check_a_delete_is_a_change_and_deleting_nothing_is_none(circle)


@pytest.mark.django_db(transaction=True)
def test_prune_changes_keeps_the_window(circle, embedded) -> None:
    checks.check_prune_changes_keeps_the_window(circle, another_circle("other"))


@pytest.mark.django_db(transaction=True)
def test_the_committed_changes_reach_the_sinks(circle, embedded) -> None:
    checks.check_the_committed_changes_reach_the_sinks(circle)


# --- on SQLite, the embedded default ------------------------------------------------------------------


def test_the_same_holds_on_sqlite(tmp_path) -> None:
    env = server_env(f"sqlite:///{tmp_path / 'changes.sqlite3'}")
    manage(env, "migrate", "--verbosity", "0")
    code = (
        "from circles.models import Circle; from tests.integration import change_log_checks as c\n"
        "from tests.helpers.keys import WalletKey\n"
        "def fresh(name): return Circle.objects.create(public_key=WalletKey.named(name).pubkey, name=name)\n"
        "c.check_concurrent_writers_get_gap_free_numbers_in_commit_order(fresh('a1'))\n"
        "c.check_a_run_that_throws_after_a_put_leaves_no_change_and_no_number(fresh('a2'))\n"
        "c.check_a_delete_is_a_change_and_deleting_nothing_is_none(fresh('a3'))\n"
        "c.check_prune_changes_keeps_the_window(fresh('a4'), fresh('a5'))\n"
        "c.check_the_committed_changes_reach_the_sinks(fresh('a6'))\n"
        "print('all held')"
    )
    assert manage(env, "shell", "--command", code).stdout.splitlines()[-1] == "all held"


# --- publishing on Redis ----------------------------------------------------------------------------


@pytest.fixture
def on_redis(settings, redis_server: RedisServer):
    settings.REDIS_URL = redis_server.url
    settings.CIRCLES_QUEUE_STREAM = f"changes:{uuid.uuid4().hex[:8]}"
    change_feed._publisher.cache_clear()
    yield settings
    change_feed._publisher.cache_clear()


def heard(pubsub, count: int) -> list[dict]:
    """The next `count` messages on the subscribed channel (waiting at most 10 s for them)."""
    got: list[dict] = []
    deadline = time.monotonic() + 10
    while len(got) < count and time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None:
            got.append(orjson.loads(message["data"]))
    return got


@pytest.mark.django_db(transaction=True)
def test_each_committed_change_is_published_once_on_the_circles_channel(
    circle, on_redis, redis_server: RedisServer
) -> None:
    client = redis_server.client()
    pubsub = client.pubsub()
    pubsub.subscribe(change_feed.changes_channel(on_redis.CIRCLES_QUEUE_STREAM, circle.id))
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    try:
        assert checks.ran(circle, 'db::put("notes", "a", #{n: 1}); db::put("notes", "b", #{n: 2})')["ok"]
        assert not checks.ran(circle, 'db::put("notes", "c", #{n: 3}); throw "no"')["ok"]
        assert checks.ran(circle, 'db::delete("notes", "a")')["ok"]
        messages = heard(pubsub, 3)
        assert messages == [change_object(change) for change in checks.changes(circle)]
        assert [(m["seq"], m["key"], m["op"]) for m in messages] == [
            (1, "a", "put"),
            (2, "b", "put"),
            (3, "a", "delete"),
        ]
        assert messages[0]["data"] == {"n": 1} and messages[0]["source"] == "ws"
        assert (
            messages[0]["updated_at"].endswith("Z")
            and messages[0]["updated_by"] == WalletKey.named("integration-member").pubkey
        )
        assert heard(pubsub, 1) == []  # the failed run published nothing
    finally:
        pubsub.close()
        client.close()


@pytest.mark.django_db(transaction=True)
def test_a_workers_run_publishes_its_changes_with_its_answer(circle, on_redis, redis_server) -> None:
    """A queue worker sends a run's changes in the command that answers and acknowledges the job
    (executor.queue FINISH), not in a round trip of its own; a failed run sends none."""
    config = QueueConfig.from_settings()
    queue = JobQueue(config)
    queue.ensure_group()
    client = redis_server.client()
    pubsub = client.pubsub()
    pubsub.subscribe(change_feed.changes_channel(on_redis.CIRCLES_QUEUE_STREAM, circle.id))
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    worker = Worker(config, name="changes-worker")
    try:
        queue.enqueue(make_job(circle, 'db::put("notes", "a", #{n: 1}); db::put("notes", "b", #{n: 2})'))
        queue.enqueue(make_job(circle, 'db::put("notes", "c", #{n: 3}); throw "no"'))
        worker.handle_batch(queue.read("w", count=2, block_ms=1000))
        assert queue.length() == 0
        messages = heard(pubsub, 2)
        assert messages == [change_object(change) for change in checks.changes(circle)]
        assert [m["key"] for m in messages] == ["a", "b"]
        assert heard(pubsub, 1) == []  # the failed run published nothing
        assert change_feed._publisher.cache_info().currsize == 0  # no publish of its own
    finally:
        worker.delivery.close()
        pubsub.close()
        client.delete(config.stream)
        client.close()
        queue.redis.close()


def test_collected_changes_are_sent_when_the_block_raises(on_redis, redis_server) -> None:
    client = redis_server.client()
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("collected")
    time.sleep(0.1)
    try:
        with pytest.raises(RuntimeError), change_feed.collected() as held:
            held.append(("collected", b"kept"))
            raise RuntimeError("the worker failed after the commit")
        message = None
        deadline = time.monotonic() + 5
        while message is None and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
        assert message is not None and message["data"] == b"kept"
    finally:
        pubsub.close()
        client.close()


# --- sources ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_play_job_and_init_runs_say_where_their_changes_come_from(circle, embedded) -> None:
    session = SimpleNamespace(circle=circle, pubkey=MEMBER.pubkey, role=Role.MEMBER)
    assert run_job(new_job(session, 'db::put("notes", "played", #{})', 5000, "1")).outcome["ok"]
    viewer = Viewer(circle.id, MEMBER.pubkey, "member")
    spec = check_spec('db::put("notes", "jobbed", #{})', None, None, None, JobLimits())
    record = job_store.create(viewer, spec)
    [dispatched] = job_store.start(viewer, str(record.id), JobLimits()).to_dispatch
    run_record(job_for(dispatched, circle.public_key))
    owner = WalletKey.named("changes-init-owner").pubkey
    init = CircleSpec("circle 1", "seeded", owner, None, None, None, 'db::put("notes", "seeded", #{})', None)
    load_circles([init])
    assert [(c.key, c.source, c.updated_by) for c in RecordChange.objects.order_by("circle_id", "seq")] == [
        ("played", "ws", MEMBER.pubkey),
        ("jobbed", "job", MEMBER.pubkey),
        ("seeded", "init", owner),
    ]


# --- the admin ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_operator_may_view_and_delete_records_and_each_deletion_is_a_change(
    circle, operator, embedded
) -> None:
    assert checks.ran(circle, 'db::put("notes", "a", #{n: 1}); db::put("notes", "b", #{n: 2})')["ok"]
    published: list = []
    remove = change_feed.add_sink(lambda circle_id, changes: published.extend(changes))
    try:
        a, b = Record.objects.order_by("key")
        page = reverse("admin:circles_record_change", args=[a.id])
        assert operator.get(page).status_code == 200
        assert operator.post(page, {"data": "{}"}).status_code == 403  # view-only: no edits
        assert (
            operator.post(reverse("admin:circles_record_delete", args=[a.id]), {"post": "yes"}).status_code
            == 302
        )
        listing = reverse("admin:circles_record_changelist")
        selected = {"action": "delete_selected", "_selected_action": [b.id], "post": "yes"}
        assert operator.post(listing, selected).status_code == 302
    finally:
        remove()
    assert not Record.objects.exists()
    assert ChangeCounter.objects.get(circle=circle).record_bytes == 0  # the deletions freed their bytes
    logged = [(c.seq, c.op, c.key, c.version, c.source, c.updated_by) for c in checks.changes(circle)]
    assert logged[2:] == [
        (3, "delete", "a", 0, "admin", "admin:operator"),
        (4, "delete", "b", 0, "admin", "admin:operator"),
    ]
    assert [change["seq"] for change in published] == [3, 4]
    changes_page = operator.get(
        reverse("admin:circles_recordchange_changelist"), {"source": "admin", "op": "delete"}
    )
    assert changes_page.status_code == 200 and b"admin:operator" in changes_page.content
    change = RecordChange.objects.get(circle=circle, seq=3)
    assert (
        operator.post(reverse("admin:circles_recordchange_change", args=[change.id]), {}).status_code == 403
    )
    assert operator.get(reverse("admin:circles_recordchange_delete", args=[change.id])).status_code == 403


# --- the cost --------------------------------------------------------------------------------------------


def change_log_statements(queries: CaptureQueriesContext) -> list[str]:
    return [
        query["sql"].split()[0].upper()
        for query in queries.captured_queries
        if "changecounter" in query["sql"] or "recordchange" in query["sql"]
    ]


@pytest.mark.django_db
def test_a_writing_run_costs_one_counter_upsert_and_one_insert_and_a_reading_run_nothing(circle) -> None:
    with CaptureQueriesContext(connection) as queries:
        assert checks.ran(
            circle, 'for i in 0..5 { db::put("notes", "n" + i, #{i: i}) } db::delete("notes", "n0")'
        )["ok"]
    # the storage cap's read of the counter (once a run), the counter's upsert, then the rows
    assert change_log_statements(queries) == ["SELECT", "INSERT", "INSERT"]
    assert RecordChange.objects.filter(circle=circle).count() == 6
    with CaptureQueriesContext(connection) as queries:
        assert checks.ran(circle, 'db::list("notes", 10).len() + db::count("notes")')["ok"]
        assert checks.ran(circle, 'db::delete("notes", "missing")')["ok"]
    assert change_log_statements(queries) == []
