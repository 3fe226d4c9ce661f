"""A run's transaction: opened by its first DSL call, committed when it ends well, rolled back when not."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from circles.models import Record
from executor.run_rows import save_runs
from executor.runner import run_job
from tests.integration.conftest import make_job


@pytest.mark.django_db
def test_a_script_that_never_touches_the_database_sends_it_nothing(circle) -> None:
    # Inside the test's own transaction an opened run transaction would be a SAVEPOINT.
    with CaptureQueriesContext(connection) as queries:
        report = run_job(make_job(circle, "let total = 0; for i in 0..10 { total += i } total"))
    assert report.outcome["result"]["value"] == 45
    assert queries.captured_queries == []


@pytest.mark.django_db
def test_the_first_dsl_call_opens_the_run_transaction(circle) -> None:
    with CaptureQueriesContext(connection) as queries:
        report = run_job(make_job(circle, 'db::count("things")'))
    assert report.outcome["result"]["value"] == 0
    statements = [query["sql"].split()[0].upper() for query in queries.captured_queries]
    assert statements[0] == "SAVEPOINT" and statements[-1] == "RELEASE"


@pytest.mark.django_db(transaction=True)
def test_a_run_commits_its_writes_and_leaves_no_transaction_open(circle) -> None:
    report = run_job(make_job(circle, 'db::put("notes", "a", #{n: 1}); db::put("notes", "b", #{n: 2})'))
    assert report.outcome["ok"]
    assert not connection.in_atomic_block
    assert sorted(Record.objects.values_list("key", flat=True)) == ["a", "b"]


@pytest.mark.django_db(transaction=True)
def test_a_run_that_fails_after_writing_rolls_back_and_leaves_no_transaction_open(circle) -> None:
    report = run_job(make_job(circle, 'db::put("notes", "a", #{n: 1}); throw "changed my mind"'))
    assert not report.outcome["ok"] and report.outcome["error"]["kind"] == "throw"
    assert not connection.in_atomic_block
    assert not Record.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_value_cannot_be_answered_rolls_back(circle) -> None:
    report = run_job(make_job(circle, 'db::put("notes", "a", #{n: 1}); || 1'))  # a closure: no JSON form
    assert not report.outcome["ok"]
    assert not Record.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_answer_past_the_result_cap_is_refused_and_rolls_back(circle, settings) -> None:
    settings.CIRCLES_RESULT_MAX_BYTES = 1000
    report = run_job(make_job(circle, 'db::put("notes", "a", #{n: 1}); let s = "x"; s.pad(2000, "y"); s'))
    assert not report.outcome["ok"]
    assert report.outcome["error"]["kind"] == "result_size"
    assert "CIRCLES_RESULT_MAX_BYTES" in report.outcome["error"]["message"]
    assert not Record.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_past_its_memory_budget_stops_with_kind_memory_and_rolls_back(circle) -> None:
    script = (
        'db::put("notes", "a", #{n: 1}); let s = "x"; for i in 0..19 { s += s; } '
        'let m = #{}; let i = 0; loop { m["k" + i] = s + i; i += 1; }'
    )
    report = run_job(make_job(circle, script))
    assert report.outcome["error"]["kind"] == "memory"
    assert not Record.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_run_row_keeps_a_bounded_script_output_value_and_logs(circle, settings) -> None:
    from executor.models import ScriptRun

    settings.CIRCLES_RUN_RECORD_MAX_BYTES = 200
    script = 'for i in 0..50 { print("line " + i); } let s = "v"; s.pad(500, "w"); [s] // ' + "c" * 300
    report = run_job(make_job(circle, script))
    assert report.outcome["ok"] and len(report.outcome["result"]["value"][0]) == 500  # the answer is whole
    save_runs([report.run_row()])
    row = ScriptRun.objects.get(id=report.job.run_id)
    assert len(row.script.encode()) < 300 and row.script.endswith("bytes in all]")
    assert len(row.output.encode()) < 300 and row.output.endswith("bytes in all]")
    assert row.value["truncated"] is True and row.value["bytes"] == len('["' + "v" + "w" * 499 + '"]')
    assert row.logs[0] == "line 0" and row.logs[-1].startswith("[logs truncated:")
    assert sum(len(line) for line in row.logs[:-1]) <= 200
