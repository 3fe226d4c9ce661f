"""Change-log scenarios that must hold on both databases: run in the test process on PostgreSQL, and
in a `manage.py shell` of their own on SQLite, the embedded default (test_change_log.py).

Each takes a fresh circle, writes through the real run path (`executor.runner.run_job`, what
workers and the in-process executor call), and checks the log with plain asserts.
"""

import threading
from datetime import timedelta

from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from circles.changes import change_object, head_seq, oldest_seq
from circles.models import Circle, RecordChange
from executor import change_feed
from executor.runner import run_job
from tests.integration.conftest import make_job


def changes(circle: Circle) -> list[RecordChange]:
    """The circle's kept changes in order."""
    return list(RecordChange.objects.filter(circle=circle).order_by("seq"))


def ran(circle: Circle, script: str, **fields) -> dict:
    """Run `script` in `circle` through the run path; its outcome."""
    return run_job(make_job(circle, script, **fields)).outcome


def check_concurrent_writers_get_gap_free_numbers_in_commit_order(
    circle: Circle, threads: int = 4, runs: int = 6
) -> None:
    """Several threads write the same circle at once: numbers 1..N, each run's contiguous, and the
    record they all update numbered in the order its versions committed."""
    failures: list[object] = []

    def writer(thread: int) -> None:
        try:
            for run in range(runs):
                mine = f"t{thread}-{run}"
                script = f'db::put("mine", "{mine}", #{{n: {run}}}); '
                outcome = ran(circle, script + f'db::put("shared", "count", #{{by: "{mine}"}})')
                if not outcome["ok"]:
                    failures.append(outcome)
        except Exception as exc:  # surfaced below, on the test's thread
            failures.append(exc)
        finally:
            connection.close()  # this thread's own connection

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    total = 2 * threads * runs
    logged = changes(circle)
    assert [change.seq for change in logged] == list(range(1, total + 1))
    assert head_seq(circle.id) == total and oldest_seq(circle.id) == 1
    for mine, shared in zip(logged[0::2], logged[1::2], strict=True):  # a run's two writes, in a row
        assert (mine.collection, shared.collection) == ("mine", "shared")
        assert shared.data == {"by": mine.key} and mine.version == 1
    # Version k of the shared record could only be written once version k-1 had committed.
    assert [change.version for change in logged if change.collection == "shared"] == list(
        range(1, threads * runs + 1)
    )


def check_a_run_that_throws_after_a_put_leaves_no_change_and_no_number(circle: Circle) -> None:
    assert ran(circle, 'db::put("notes", "kept", #{n: 1})')["ok"]
    outcome = ran(circle, 'db::put("notes", "lost", #{n: 2}); db::delete("notes", "kept"); throw "no"')
    assert not outcome["ok"] and outcome["error"]["kind"] == "throw"
    assert head_seq(circle.id) == 1
    assert ran(circle, 'db::put("notes", "after", #{n: 3})')["ok"]
    assert [(change.seq, change.key) for change in changes(circle)] == [(1, "kept"), (2, "after")]


def check_a_delete_is_a_change_and_deleting_nothing_is_none(circle: Circle) -> None:
    assert ran(circle, 'db::put("notes", "a", #{n: 1}); db::put("notes", "a", #{n: 2})')["ok"]
    outcome = ran(
        circle, 'let gone = db::delete("notes", "a"); let none = db::delete("notes", "b"); [gone, none]'
    )
    assert outcome["result"]["value"] == [True, False]
    assert [(c.seq, c.op, c.key, c.version, c.data) for c in changes(circle)] == [
        (1, "put", "a", 1, {"n": 1}),
        (2, "put", "a", 2, {"n": 2}),
        (3, "delete", "a", 0, None),
    ]
    assert ran(circle, 'db::delete("notes", "a")')["ok"] and head_seq(circle.id) == 3


def check_prune_changes_keeps_the_window(circle: Circle, other: Circle) -> None:
    assert ran(circle, 'for i in 1..=10 { db::put("notes", "n" + i, #{i: i}) }')["ok"]
    assert ran(other, 'db::put("notes", "x", #{i: 0})')["ok"]
    month_ago = timezone.now() - timedelta(days=30)
    RecordChange.objects.filter(circle=circle, seq__lte=3).update(updated_at=month_ago)
    call_command("prune_changes", "--keep-per-circle", "8", "--keep-days", "7")
    # seq 1-2 are beyond the newest 8, seq 3 older than 7 days.
    assert [change.seq for change in changes(circle)] == list(range(4, 11))
    assert (oldest_seq(circle.id), head_seq(circle.id)) == (4, 10)
    assert [change.seq for change in changes(other)] == [1]
    call_command("prune_changes", "--keep-per-circle", "0")
    assert not RecordChange.objects.exists()
    assert (oldest_seq(circle.id), head_seq(circle.id)) == (11, 10)  # nothing kept, numbering goes on
    assert ran(circle, 'db::put("notes", "again", #{})')["ok"] and changes(circle)[0].seq == 11


def check_the_committed_changes_reach_the_sinks(circle: Circle) -> None:
    """Embedded mode (no REDIS_URL): what the run committed, to every sink, after the commit."""
    heard: list[tuple[int, list[dict]]] = []
    remove = change_feed.add_sink(lambda circle_id, published: heard.append((circle_id, list(published))))
    try:
        assert ran(circle, 'db::put("notes", "a", #{n: 1}); db::delete("notes", "a")')["ok"]
        assert heard == [(circle.id, [change_object(change) for change in changes(circle)])]
        assert [change["op"] for change in heard[0][1]] == ["put", "delete"]
        assert not ran(circle, 'db::put("notes", "b", #{n: 1}); throw "no"')["ok"]
        assert ran(circle, 'db::get("notes", "a"); db::count("notes")')["ok"]  # read only
        assert len(heard) == 1
    finally:
        remove()
