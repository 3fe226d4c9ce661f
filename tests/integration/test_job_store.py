"""The jobs' lifecycle on real rows: visibility, limits, prerequisites, runs, stops (executor.job_store)."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import rhai
from django.utils import timezone

from circles.models import Record
from executor import job_rows, job_store
from executor.job_logs import LiveLogs
from executor.job_rules import (
    ACTIVE,
    InvalidJobParams,
    JobLimits,
    JobNotFound,
    TooManyActiveJobs,
    WrongJobState,
    check_spec,
    joined_logs,
)
from executor.job_runs import job_for, run_record
from executor.job_store import Viewer
from executor.models import JobRecord
from tests.helpers.keys import WalletKey

LIMITS = JobLimits(max_active_per_caller=3)
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def member(circle) -> Viewer:
    return Viewer(circle.id, WalletKey.named("jobs-member").pubkey, "member")


@pytest.fixture
def other(circle) -> Viewer:
    return Viewer(circle.id, WalletKey.named("jobs-other").pubkey, "member")


@pytest.fixture
def admin(circle) -> Viewer:
    return Viewer(circle.id, WalletKey.named("jobs-admin").pubkey, "admin", sees_all=True)


def new(viewer: Viewer, script: str = "40 + 2", **params) -> JobRecord:
    spec = check_spec(
        script, params.get("timeout"), params.get("env_vars"), params.get("prerequisites"), LIMITS
    )
    return job_store.create(viewer, spec)


def run_dispatched(change, circle) -> list:
    """Run each job the change handed over, as a job slot would; the changes they made."""
    done = []
    for record in change.to_dispatch:
        done.append(run_record(job_for(record, circle.public_key)))
    return done


def test_a_job_is_created_started_run_and_finished(circle, member) -> None:
    record = new(member, 'print("hi"); print(ENV_VARS.NAME); ENV_VARS.NAME + "!"', env_vars={"NAME": "x"})
    assert record.status == "created" and record.revision == 1
    change = job_store.start(member, str(record.id), LIMITS)
    assert [event["status"] for _, event in change.events] == ["dispatched"]
    [ran] = run_dispatched(change, circle)
    statuses = [event["status"] for _, event in ran.events]
    assert statuses == ["finished"]  # "started" was published as the run began
    record.refresh_from_db()
    assert (record.status, record.output, record.value, record.logs) == ("finished", "x!", "x!", "hi\nx")
    assert record.logs_size == 4 and record.elapsed_ms is not None and record.deliveries == 1
    revisions = [event["revision"] for _, event in change.events + ran.events]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)
    with pytest.raises(WrongJobState) as wrong:
        job_store.start(member, str(record.id), LIMITS)
    assert wrong.value.status == "finished"


def test_a_redelivered_job_that_finished_is_not_run_again_but_its_end_is_announced(circle, member) -> None:
    record = new(member, 'db::put("counts", "c", #{n: 1}); 1')
    change = job_store.start(member, str(record.id), LIMITS)
    job = job_for(change.to_dispatch[0], circle.public_key)
    first = run_record(job)
    again = run_record(job, deliveries=2)  # its worker died before acknowledging (and publishing)
    assert again.events == first.events and again.to_dispatch == []
    record.refresh_from_db()
    assert record.deliveries == 1 and Record.objects.count() == 1


class SlotDied(BaseException):
    """The job slot's process ending where it is raised (nothing after it runs)."""


def test_a_slot_dying_between_a_jobs_commit_and_its_acknowledgement_still_releases_dependents(
    circle, member, monkeypatch
) -> None:
    first = new(member, "1")
    second = new(member, "2", prerequisites=[str(first.id)])
    assert job_store.start(member, str(second.id), LIMITS).to_dispatch == []
    job = job_for(job_store.start(member, str(first.id), LIMITS).to_dispatch[0], circle.public_key)

    def die(circle_id, ended):
        raise SlotDied()

    with monkeypatch.context() as patched:
        patched.setattr(job_store, "release_dependents", die)
        with pytest.raises(SlotDied):
            run_record(job)  # committed `finished`, then died before releasing and acknowledging
    first.refresh_from_db()
    assert first.status == "finished"
    again = run_record(job, deliveries=2)  # the entry, claimed by another slot
    assert [(event["job_id"], event["status"]) for _, event in again.events] == [
        (str(first.id), "finished"),
        (str(second.id), "dispatched"),
    ]
    assert again.events[0][1]["revision"] == first.revision
    [released] = run_dispatched(again, circle)
    second.refresh_from_db()
    assert (
        second.status == "finished" and second.output == "2" and released.events[0][1]["status"] == "finished"
    )


def test_a_slot_dying_between_releasing_a_dependent_and_handing_it_over_hands_it_over_on_redelivery(
    circle, member
) -> None:
    first = new(member, "1")
    second = new(member, 'db::put("counts", "c", #{n: 1}); 2', prerequisites=[str(first.id)])
    job_store.start(member, str(second.id), LIMITS)
    job = job_for(job_store.start(member, str(first.id), LIMITS).to_dispatch[0], circle.public_key)
    [lost] = run_record(job).to_dispatch  # released `second`, then died before handing its run over
    again = run_record(job, deliveries=2)  # the entry, claimed by another slot
    [rehanded] = again.to_dispatch
    assert rehanded.id == second.id and rehanded.run_id != lost.run_id
    assert [event["status"] for _, event in again.events] == ["finished"]
    [ran] = run_dispatched(again, circle)
    assert [event["status"] for _, event in ran.events] == ["finished"]
    # Had the lost run reached the stream after all, it never runs: the job ran once.
    assert run_record(job_for(lost, circle.public_key)).events == []
    second.refresh_from_db()
    assert (second.status, second.output, second.deliveries) == ("finished", "2", 1)
    assert Record.objects.count() == 1


def test_a_dependent_that_started_is_not_handed_over_again(circle, member) -> None:
    first = new(member, "1")
    second = new(member, "2", prerequisites=[str(first.id)])
    job_store.start(member, str(second.id), LIMITS)
    job = job_for(job_store.start(member, str(first.id), LIMITS).to_dispatch[0], circle.public_key)
    [released] = run_record(job).to_dispatch
    job_rows.mark_started(str(second.id), str(released.run_id), timezone.now())  # its slot has it
    assert run_record(job, deliveries=2).to_dispatch == []


def test_only_a_job_named_as_a_prerequisite_is_flagged_to_release_dependents(circle, member) -> None:
    alone, named = new(member, "1"), new(member, "2")
    new(member, "3", prerequisites=[str(named.id)])
    alone.refresh_from_db()
    named.refresh_from_db()
    assert (alone.has_dependents, named.has_dependents) == (False, True)


def test_a_failed_job_leaves_no_write_and_ends_error(circle, member) -> None:
    record = new(member, 'db::put("notes", "n", #{a: 1}); throw "boom"')
    [ran] = run_dispatched(job_store.start(member, str(record.id), LIMITS), circle)
    record.refresh_from_db()
    assert record.status == "error" and record.error["kind"] == "throw" and "boom" in record.error["message"]
    assert Record.objects.count() == 0 and ran.events[-1][1]["error"] == record.error


def test_another_callers_job_is_not_found_and_an_admin_sees_all(circle, member, other, admin) -> None:
    record = new(member)
    with pytest.raises(JobNotFound):
        job_store.get(other, str(record.id))
    with pytest.raises(JobNotFound):
        job_store.stop(other, str(record.id))
    assert job_store.get(admin, str(record.id)).id == record.id
    assert [r.id for r in job_store.list_jobs(admin)] == [record.id]
    assert job_store.list_jobs(other) == []
    with pytest.raises(JobNotFound):
        job_store.get(member, "not-a-uuid")


def test_lists_are_newest_first_with_a_cursor_and_a_status(circle, member) -> None:
    records = [new(member, str(i)) for i in range(5)]
    newest = job_store.list_jobs(member, limit=2)
    assert [r.id for r in newest] == [records[4].id, records[3].id]
    after = job_store.list_jobs(member, limit=10, before=str(records[3].id))
    assert [r.id for r in after] == [r.id for r in reversed(records[:3])]
    assert job_store.list_jobs(member, status="finished") == []


def test_the_active_jobs_of_a_caller_are_bounded(circle, member) -> None:
    for _ in range(LIMITS.max_active_per_caller):
        job_store.start(member, str(new(member).id), LIMITS)
    with pytest.raises(TooManyActiveJobs):
        job_store.start(member, str(new(member).id), LIMITS)


def test_the_index_the_active_count_reads_holds_exactly_the_active_jobs() -> None:
    """`job_caller_active` is partial: if its statuses drifted from ACTIVE, the count of a
    caller's active jobs (every `start_job`) would fall back to reading all the caller's jobs."""
    (index,) = [index for index in JobRecord._meta.indexes if index.name == "job_caller_active"]
    ((lookup, statuses),) = index.condition.children
    assert lookup == "status__in" and set(statuses) == ACTIVE


@pytest.mark.parametrize(
    ("script", "env_vars", "param"), [('"a\x00"', None, "script"), ("1", {"NAME": "v\x00"}, "env_vars")]
)
def test_a_nul_character_in_a_job_is_a_params_error_not_a_database_one(
    member, script, env_vars, param
) -> None:
    """PostgreSQL's text and jsonb cannot hold NUL: refused up front (-32602), nothing stored."""
    with pytest.raises(InvalidJobParams) as refused:
        new(member, script, env_vars=env_vars)
    assert refused.value.field == param and "NUL" in refused.value.reason
    assert not JobRecord.objects.exists()


def test_prerequisites_must_be_the_callers_own_jobs(circle, member, other) -> None:
    theirs = new(other)
    with pytest.raises(InvalidJobParams):
        new(member, prerequisites=[str(theirs.id)])
    with pytest.raises(InvalidJobParams):
        new(member, prerequisites=[str(uuid.uuid4())])


def test_a_chain_of_prerequisites_runs_in_order_and_a_failure_propagates(circle, member) -> None:
    first = new(member, "1")
    second = new(member, "2", prerequisites=[str(first.id)])
    third = new(member, "3", prerequisites=[str(second.id)])
    waiting = job_store.start(member, str(third.id), LIMITS)
    assert waiting.to_dispatch == [] and [e["status"] for _, e in waiting.events] == ["dispatched"]
    assert job_store.start(member, str(second.id), LIMITS).to_dispatch == []
    ran = run_dispatched(job_store.start(member, str(first.id), LIMITS), circle)
    assert [r.id for r in ran[0].to_dispatch] == [second.id]
    ran = run_dispatched(ran[0], circle)
    assert [r.id for r in ran[0].to_dispatch] == [third.id]
    run_dispatched(ran[0], circle)
    third.refresh_from_db()
    assert third.status == "finished" and third.output == "3"

    bad = new(member, 'throw "no"')
    after_bad = new(member, "4", prerequisites=[str(bad.id)])
    after_that = new(member, "5", prerequisites=[str(after_bad.id)])
    job_store.start(member, str(after_that.id), LIMITS)
    job_store.start(member, str(after_bad.id), LIMITS)
    [ran] = run_dispatched(job_store.start(member, str(bad.id), LIMITS), circle)
    ended = {event["job_id"]: event for _, event in ran.events if event["status"] == "error"}
    assert ended[str(after_bad.id)]["error"]["kind"] == "prerequisite"
    assert str(bad.id) in ended[str(after_bad.id)]["error"]["message"]
    assert ended[str(after_that.id)]["error"]["kind"] == "prerequisite"


def test_a_stopped_job_never_runs_and_a_running_one_is_not_deleted(circle, member) -> None:
    record = new(member, 'db::put("notes", "n", #{a: 1}); 1')
    change = job_store.start(member, str(record.id), LIMITS)
    with pytest.raises(WrongJobState):
        job_store.delete(member, str(record.id))
    stopped = job_store.stop(member, str(record.id))
    assert stopped.run_id is None and stopped.change.events[0][1]["error"]["kind"] == "stopped"
    assert run_dispatched(change, circle)[0].events == []
    assert Record.objects.count() == 0
    job_store.delete(member, str(record.id))
    assert not JobRecord.objects.exists()


def test_clear_deletes_what_is_not_running(circle, member, other, admin) -> None:
    new(member)
    job_store.start(member, str(new(member).id), LIMITS)
    new(other)
    assert job_store.clear(member)[0] == 1
    assert job_store.clear(admin)[0] == 1
    assert JobRecord.objects.count() == 1


def test_pruning_deletes_old_ended_jobs(circle, member) -> None:
    record = new(member)
    job_store.stop(member, str(record.id))
    assert job_store.prune(1) == 0
    assert job_store.prune(-1) == 1


def test_a_running_jobs_printed_lines_reach_its_row_before_it_ends(circle, member) -> None:
    record = new(member, 'print("first"); print("second"); loop {}', timeout=60)
    job = job_for(job_store.start(member, str(record.id), LIMITS).to_dispatch[0], circle.public_key)
    cancel = rhai.CancelToken()
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run_record, job, cancel)
        deadline = time.monotonic() + 30
        while JobRecord.objects.get(id=record.id).logs is None and time.monotonic() < deadline:
            time.sleep(0.02)
        live = JobRecord.objects.get(id=record.id)
        job_store.stop(member, str(record.id))
        cancel.cancel()
        running.result()
    assert (live.status, live.logs, live.logs_size) == ("started", "first\nsecond", 12)
    record.refresh_from_db()
    assert record.error["kind"] == "stopped" and record.logs == "first\nsecond"  # a stop keeps them


def test_a_failed_job_keeps_what_it_printed(circle, member) -> None:
    record = new(member, 'print("before"); throw "boom"')
    run_dispatched(job_store.start(member, str(record.id), LIMITS), circle)
    record.refresh_from_db()
    assert (record.status, record.logs, record.logs_size) == ("error", "before", 6)


def test_a_flush_appends_only_the_new_lines_then_stops_once_the_job_ended(circle, member) -> None:
    record = new(member, "1")
    started = job_store.start(member, str(record.id), LIMITS).to_dispatch[0]
    job_rows.mark_started(str(record.id), str(started.run_id), timezone.now())
    live = LiveLogs(str(record.id), str(started.run_id), max_bytes=1000)
    engine = rhai.Engine()
    engine.eval('print("a"); print("b")', tap=live.tap)
    revision = JobRecord.objects.get(id=record.id).revision
    assert live.flush() and not live.flush()  # nothing new the second time
    engine.eval('print("c")', tap=live.tap)
    assert live.flush()
    row = JobRecord.objects.get(id=record.id)
    assert (row.logs, row.logs_size, row.revision) == ("a\nb\nc", 5, revision + 2)
    job_store.stop(member, str(record.id))
    engine.eval('print("d")', tap=live.tap)
    assert not live.flush() and live.stopping.is_set()
    assert JobRecord.objects.get(id=record.id).logs == "a\nb\nc"


def test_live_logs_are_cut_at_the_bound_like_the_final_ones(circle, member) -> None:
    record = new(member, "1")
    started = job_store.start(member, str(record.id), LIMITS).to_dispatch[0]
    job_rows.mark_started(str(record.id), str(started.run_id), timezone.now())
    live = LiveLogs(str(record.id), str(started.run_id), max_bytes=8)
    rhai.Engine().eval('print("12345"); print("67890")', tap=live.tap)
    assert live.flush()
    row = JobRecord.objects.get(id=record.id)
    assert row.logs == joined_logs(["12345", "67890"], 8) == "12345\n67\n[logs truncated at 8 bytes]"
    rhai.Engine().eval('print("more")', tap=live.tap)
    assert not live.flush()  # past the bound: the row's logs no longer change
