"""The jobs' admin (read-only list, stop and delete actions) and `manage.py prune_jobs`, on real rows."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from executor import job_store
from executor.job_rules import JobLimits, check_spec
from executor.job_store import Viewer
from executor.models import JobRecord
from tests.helpers.keys import WalletKey

pytestmark = pytest.mark.django_db(transaction=True)
LIMITS = JobLimits()
CHANGELIST = "admin:executor_jobrecord_changelist"


@pytest.fixture
def operator(db) -> Client:
    User.objects.create_superuser("operator", "op@example.org", "pw")
    client = Client()
    client.login(username="operator", password="pw")
    return client


@pytest.fixture
def member(circle) -> Viewer:
    return Viewer(circle.id, WalletKey.named("admin-jobs-member").pubkey, "member")


def new(viewer: Viewer, script: str = "1", prerequisites: list[str] | None = None) -> JobRecord:
    return job_store.create(viewer, check_spec(script, None, None, prerequisites, LIMITS))


def ended(viewer: Viewer, days_ago: float, status: str = "finished") -> JobRecord:
    record = new(viewer)
    finished = timezone.now() - timedelta(days=days_ago)
    JobRecord.objects.filter(id=record.id).update(status=status, finished_at=finished)
    return JobRecord.objects.get(id=record.id)


def test_jobs_are_listed_filtered_and_read_only(operator: Client, member: Viewer) -> None:
    done, waiting = ended(member, 0), new(member)
    page = operator.get(reverse(CHANGELIST), {"status__exact": "finished"})
    assert page.status_code == 200
    assert str(done.id) in page.content.decode() and str(waiting.id) not in page.content.decode()
    detail = operator.get(reverse("admin:executor_jobrecord_change", args=[done.id]))
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert operator.get(reverse("admin:executor_jobrecord_add")).status_code == 403


def test_the_stop_action_ends_unfinished_jobs_stopped(operator: Client, member: Viewer) -> None:
    created, done = new(member), ended(member, 0)
    answer = operator.post(
        reverse(CHANGELIST), {"action": "stop_jobs", "_selected_action": [str(created.id), str(done.id)]}
    )
    assert answer.status_code == 302
    created.refresh_from_db()
    done.refresh_from_db()
    assert created.status == "error" and created.error["kind"] == "stopped"
    assert done.status == "finished"  # an ended job is left as it ended


def test_the_delete_action_deletes_ended_jobs_and_releases_those_waiting_on_them(
    operator: Client, member: Viewer
) -> None:
    first = new(member)
    waiting = new(member, prerequisites=[str(first.id)])
    job_store.start(member, str(waiting.id), LIMITS)  # waits for `first`, which never ran
    answer = operator.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": [str(first.id)], "post": "yes"},
    )
    assert answer.status_code == 302
    assert not JobRecord.objects.filter(id=first.id).exists()
    waiting.refresh_from_db()
    assert waiting.status == "error" and waiting.error["kind"] == "prerequisite"


def test_a_running_job_is_not_deleted_from_the_admin(operator: Client, member: Viewer) -> None:
    record = new(member)
    JobRecord.objects.filter(id=record.id).update(status="started")
    record.refresh_from_db()
    page = operator.get(reverse("admin:executor_jobrecord_delete", args=[record.id]))
    assert page.status_code == 403
    selected = {"action": "delete_selected", "_selected_action": [str(record.id)], "post": "yes"}
    operator.post(reverse(CHANGELIST), selected)
    assert JobRecord.objects.filter(id=record.id).exists()


def test_prune_jobs_deletes_only_jobs_that_ended_before_the_retention(member: Viewer) -> None:
    old_done, old_failed, recent = ended(member, 40), ended(member, 40, "error"), ended(member, 5)
    never_ended = new(member)
    out = StringIO()
    call_command("prune_jobs", stdout=out)  # CIRCLES_JOBS_RETENTION_DAYS: 30
    assert out.getvalue().strip() == "deleted 2 jobs"
    left = set(JobRecord.objects.values_list("id", flat=True))
    assert left == {recent.id, never_ended.id} and old_done.id not in left and old_failed.id not in left
    call_command("prune_jobs", "--older-than", "1", stdout=out)
    assert set(JobRecord.objects.values_list("id", flat=True)) == {never_ended.id}
    with pytest.raises(CommandError):
        call_command("prune_jobs", "--older-than", "-1")
