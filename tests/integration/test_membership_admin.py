"""The admin shows who changed membership and when, from the runs that did it; operators' edits too."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from circles.models import Circle, Member, MembershipChange
from executor.jobs import Job
from tests.helpers.keys import WalletKey
from tests.integration.conftest import run_and_save

pytestmark = pytest.mark.django_db(transaction=True)

OWNER, ANN, BOB = (WalletKey.named(f"admin-trail-{who}") for who in ("owner", "ann", "bob"))


@pytest.fixture
def circle(db) -> Circle:
    return Circle.objects.create(public_key=OWNER.pubkey, name="trail")


def owner_runs(circle: Circle, script: str) -> str:
    job = Job.for_timeout(
        circle_id=circle.id,
        circle_key=circle.public_key,
        caller_id=circle.public_key,
        caller_role="owner",
        source="ws",
        script=script,
        timeout_ms=5000,
    )
    assert run_and_save(job)["ok"]
    return job.run_id


def test_the_trail_lists_each_change_with_its_run(operator: Client, circle: Circle) -> None:
    added = owner_runs(circle, f'circle::add_member("{ANN.pubkey}", "member")')
    promoted = owner_runs(
        circle, f'circle::set_role("{ANN.pubkey}", "admin"); circle::update(#{{name: "t2"}})'
    )
    page = operator.get(reverse("admin:circles_membershipchange_changelist"))
    assert page.status_code == 200
    text = page.content.decode()
    for run_id in (added, promoted):  # each change links to the ScriptRun that made it
        assert reverse("admin:executor_scriptrun_change", args=[run_id]) in text
    assert (
        "member → admin" in text
        and "— → member" in text
        and "name: &#x27;trail&#x27; → &#x27;t2&#x27;" in text
    )
    assert OWNER.pubkey in text
    # The circle's page shows them inline, and the members list says who changed each one last.
    assert added in operator.get(reverse("admin:circles_circle_change", args=[circle.id])).content.decode()
    members = operator.get(reverse("admin:circles_member_changelist")).content.decode()
    assert f"by {OWNER.pubkey[:20]}" in members


def test_the_trail_costs_the_same_queries_for_more_changes(operator: Client, circle: Circle) -> None:
    owner_runs(circle, f'circle::add_member("{ANN.pubkey}", "member")')
    url = reverse("admin:circles_membershipchange_changelist")
    with CaptureQueriesContext(connection) as one:
        operator.get(url)
    owner_runs(circle, f'circle::add_member("{BOB.pubkey}", "member"); circle::remove_member("{ANN.pubkey}")')
    with CaptureQueriesContext(connection) as three:
        operator.get(url)
    assert len(three) == len(one)


def test_an_operators_edits_in_the_admin_are_recorded(operator: Client, circle: Circle) -> None:
    member = Member.objects.create(circle=circle, public_key=ANN.pubkey, role="member")
    url = reverse("admin:circles_member_change", args=[member.id])
    form = {
        "circle": circle.id,
        "public_key": ANN.pubkey,
        "address": "",
        "role": "admin",
        "display_name": "Ann",
    }
    assert operator.post(url, form).status_code == 302
    assert (
        operator.post(reverse("admin:circles_member_delete", args=[member.id]), {"post": "yes"}).status_code
        == 302
    )
    trail = list(
        MembershipChange.objects.order_by("at", "id").values_list(
            "action", "old_role", "new_role", "changed_by"
        )
    )
    assert trail == [
        ("role", "member", "admin", "admin:operator"),
        ("removed", "admin", "", "admin:operator"),
    ]
