"""Exactly-once effects: a job delivered again after its run committed does not apply its writes twice."""

import threading

import pytest
from django.db import close_old_connections

from circles.models import Record, RecordChange
from executor.applied import applied_key
from executor.models import AppliedRun
from executor.runner import run_job
from tests.integration.conftest import make_job

# Adds one to a balance: applied twice, it would credit twice.
CREDIT = """
    let account = db::get("balances", "alice");
    let balance = if account == () { 0 } else { account.balance };
    db::put("balances", "alice", #{ balance: balance + 10 });
    balance + 10
"""


def balance() -> int:
    return Record.objects.get(collection="balances", key="alice").data["balance"]


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_job_answers_from_its_first_run_without_running_again(circle) -> None:
    job = make_job(circle, CREDIT)
    first = run_job(job)
    again = run_job(job, redelivered=True)
    assert balance() == 10
    assert again.outcome == first.outcome and again.outcome["result"]["value"] == 10
    assert AppliedRun.objects.get(key=applied_key(job)).run_id.hex == job.run_id.replace("-", "")
    assert list(RecordChange.objects.values_list("seq", "key")) == [(1, "alice")]  # one change, not two


@pytest.mark.django_db(transaction=True)
def test_a_run_that_only_reads_leaves_no_mark_and_a_failed_one_none_either(circle) -> None:
    run_job(make_job(circle, 'db::get("balances", "alice")'))
    run_job(make_job(circle, 'db::put("balances", "alice", #{balance: 1}); throw "no"'))
    assert (
        not AppliedRun.objects.exists() and not Record.objects.exists() and not RecordChange.objects.exists()
    )


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_running_at_once_commit_once(circle) -> None:
    """The second waits on the first's mark (PostgreSQL's unique index), then rolls back and replays it."""
    # Holds its transaction open for a while after writing, so the two runs overlap.
    job = make_job(
        circle, CREDIT + "; let n = 0; for i in 0..300000 { n += 1; } balance + 10", timeout_ms=30_000
    )
    outcomes = []

    def deliver() -> None:
        try:
            outcomes.append(run_job(job, redelivered=True).outcome)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert balance() == 10
    assert len(outcomes) == 2 and outcomes[0] == outcomes[1] and outcomes[0]["ok"]
    assert AppliedRun.objects.count() == 1
    # The mark and the change commit together: the delivery that lost rolled both back.
    assert list(RecordChange.objects.values_list("seq", "version")) == [(1, 1)]


@pytest.mark.django_db(transaction=True)
def test_a_webhook_event_requeued_with_a_new_run_id_is_still_applied_once(circle) -> None:
    first = make_job(circle, CREDIT, role="service", source="webhook:stripe", event_id=7)
    lease_expired = make_job(circle, CREDIT, role="service", source="webhook:stripe", event_id=7)
    run_job(first)
    report = run_job(lease_expired)  # a new run id: the sweep queued the event again
    assert balance() == 10
    assert report.outcome["ok"] and report.outcome["run_id"] == lease_expired.run_id
    assert report.outcome["result"]["value"] == 10


@pytest.mark.django_db(transaction=True)
def test_a_written_run_whose_answer_holds_a_nul_is_answered_and_its_mark_kept(circle) -> None:
    """PostgreSQL's jsonb holds no NUL: the mark keeps U+FFFD, the caller gets the answer as it is
    (before, the mark's INSERT failed the commit and the run answered `host`)."""
    job = make_job(circle, 'db::put("notes", "n", #{ a: 1 }); "a\\x00b"')
    report = run_job(job)
    assert report.outcome["ok"] and report.outcome["result"]["value"] == "a\x00b"
    assert AppliedRun.objects.get(key=applied_key(job)).outcome["value"] == "a\ufffdb"
    assert Record.objects.filter(collection="notes", key="n").exists()


@pytest.mark.django_db(transaction=True)
def test_a_record_string_with_a_nul_is_refused_with_a_clear_error(circle) -> None:
    """Not PostgreSQL's message (it quoted the SQL statement to the member), and nothing kept."""
    report = run_job(make_job(circle, 'db::put("notes", "n", #{ a: "x\\x00y" }); 1'))
    error = report.outcome["error"]
    assert error["kind"] == "host"
    assert error["message"] == "a record's strings cannot hold the NUL character (\\0)"
    assert not Record.objects.exists()
