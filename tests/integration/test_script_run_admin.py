"""The ScriptRun admin: a read-only list with filters, and each run shown whole."""

import pytest
from django.test import Client
from django.urls import reverse

from executor.models import ScriptRun
from tests.integration.conftest import make_job, run_and_save

pytestmark = pytest.mark.django_db(transaction=True)


def test_runs_are_listed_filtered_and_shown_read_only(operator: Client, circle) -> None:
    ok = make_job(circle, "21 * 2")
    bad = make_job(circle, "let x = 1;\nthrow 7;")
    run_and_save(ok)
    run_and_save(bad)
    changelist = reverse("admin:executor_scriptrun_changelist")
    page = operator.get(changelist, {"status__exact": "failed"})
    assert page.status_code == 200
    assert str(bad.run_id) in page.content.decode() and str(ok.run_id) not in page.content.decode()
    detail = operator.get(reverse("admin:executor_scriptrun_change", args=[bad.run_id]))
    body = detail.content.decode()
    assert detail.status_code == 200 and "throw" in body and "let x = 1;" in body
    assert 'name="_save"' not in body  # nothing to save: read-only
    assert operator.post(reverse("admin:executor_scriptrun_change", args=[bad.run_id]), {}).status_code == 403
    assert operator.get(reverse("admin:executor_scriptrun_add")).status_code == 403


def recorded() -> set[str]:
    return {str(run_id) for run_id in ScriptRun.objects.values_list("id", flat=True)}


def test_recording_policy_errors(settings, circle) -> None:
    settings.CIRCLES_RECORD_RUNS = "errors"
    ok, bad = make_job(circle, "1"), make_job(circle, "throw 1")
    run_and_save(ok)
    run_and_save(bad)
    assert recorded() == {bad.run_id}


def test_recording_policy_webhooks(settings, circle) -> None:
    settings.CIRCLES_RECORD_RUNS = "webhooks"
    ws, hook = make_job(circle, "1"), make_job(circle, "2", source="webhook:stripe", role="service")
    run_and_save(ws)
    run_and_save(hook)
    assert recorded() == {hook.run_id}


def test_prune_deletes_only_old_runs(circle) -> None:
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    old, new = make_job(circle, "1"), make_job(circle, "2")
    run_and_save(old)
    run_and_save(new)
    ScriptRun.objects.filter(id=old.run_id).update(queued_at=timezone.now() - timedelta(days=40))
    call_command("prune_script_runs", "--older-than", "30")
    assert recorded() == {new.run_id}
