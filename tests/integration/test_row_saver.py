"""The row saver: rows saved on its thread, and its backlog bounded when the database falls behind."""

import threading

import pytest

from circles.models import Circle
from executor.models import ScriptRun
from executor.row_saver import MAX_ROWS_PER_SAVE, RowSaver
from executor.runner import RunReport, script_error
from tests.helpers.keys import WalletKey
from tests.integration.conftest import make_job
from tests.integration.test_queue import wait_for
from tests.integration.test_worker_fairness import run_rows_locked, saves_waiting

pytestmark = pytest.mark.django_db(transaction=True)


def row(circle) -> ScriptRun:
    error = script_error("cancelled", "test")
    return RunReport.unrun(make_job(circle, "1"), ScriptRun.Status.FAILED, error).run_row(worker="t")


def test_rows_handed_over_are_saved_by_the_thread_and_stop_saves_the_rest(circle) -> None:
    saver = RowSaver("test")
    saver.start()
    rows = [row(circle) for _ in range(5)]
    for one in rows:
        saver.save([one])
    saver.stop()
    assert ScriptRun.objects.filter(id__in=[one.id for one in rows]).count() == 5


def test_past_its_backlog_the_caller_saves_on_its_own_thread(circle) -> None:
    """With one row waiting (the bound), the next is saved by its caller: a second waiting save."""
    saver = RowSaver("test", max_waiting=1)
    saver.start()
    first, second = row(circle), row(circle)
    with run_rows_locked():
        saver.save([first])  # handed over: the thread waits for the lock
        wait_for(lambda: saves_waiting() == 1)
        caller = threading.Thread(target=saver.save, args=([second],), daemon=True)
        caller.start()
        wait_for(lambda: saves_waiting() == 2)  # not queued behind the first: saved by `caller`
    caller.join(10)
    saver.stop()
    assert ScriptRun.objects.filter(id__in=[first.id, second.id]).count() == 2


def test_rows_handed_over_one_by_one_are_gathered_into_one_save(circle) -> None:
    """A run's row waits up to `gather_seconds` for others (one statement, not one per play); a
    full statement's worth is saved without waiting, and `stop` saves what is still gathering."""
    saver = RowSaver("test", gather_seconds=60)
    saver.start()
    first = [row(circle) for _ in range(3)]
    for one in first:
        saver.save([one])
    threading.Event().wait(0.3)
    assert not ScriptRun.objects.filter(id__in=[one.id for one in first]).exists()
    for _ in range(MAX_ROWS_PER_SAVE - len(first)):
        saver.save([row(circle)])
    wait_for(lambda: ScriptRun.objects.count() == MAX_ROWS_PER_SAVE)
    last = row(circle)
    saver.save([last])
    saver.stop()
    assert ScriptRun.objects.filter(id=last.id).exists()


def test_a_row_that_cannot_be_saved_does_not_take_the_others_of_its_batch_with_it(circle, caplog) -> None:
    """A run's circle deleted before its row was saved: that row is lost, not the batch, and
    the loss is one log line, not a traceback per row."""
    doomed_circle = Circle.objects.create(
        public_key=WalletKey.named("row-saver-doomed").pubkey, name="doomed"
    )
    doomed = row(doomed_circle)
    doomed_circle.delete()
    kept = [row(circle), row(circle)]
    saver = RowSaver("test", gather_seconds=60)
    saver.start()
    saver.save([kept[0]])
    saver.save([doomed])
    saver.save([kept[1]])
    saver.stop()  # one batch of the three
    saved = ScriptRun.objects.values_list("id", flat=True)
    assert {str(one) for one in saved} == {str(one.id) for one in kept}
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1 and "could not save 1 of 3 run rows" in errors[0].getMessage()
