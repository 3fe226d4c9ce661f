"""The circle admin: member counts come with the list's own query, and a circle is deleted with its logs."""

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from circles.models import Circle, Member
from tests.helpers.keys import WalletKey

pytestmark = pytest.mark.django_db


def circles_page_queries(client: Client) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("admin:circles_circle_changelist"))
    assert page.status_code == 200
    return page.content.decode(), len(queries)


def test_member_counts_do_not_cost_a_query_per_circle() -> None:
    User.objects.create_superuser("operator", "op@example.org", "pw")
    client = Client()
    client.login(username="operator", password="pw")
    first = Circle.objects.create(public_key=WalletKey.named("admin-c0").pubkey, name="c0")
    for n in range(3):
        Member.objects.create(circle=first, public_key=WalletKey.named(f"admin-m{n}").pubkey, role="member")
    _, with_one = circles_page_queries(client)
    for n in range(1, 6):
        Circle.objects.create(public_key=WalletKey.named(f"admin-c{n}").pubkey, name=f"c{n}")
    page, with_six = circles_page_queries(client)
    assert with_six == with_one
    assert '<td class="field-member_count">3</td>' in page


def circle_with_history() -> Circle:
    """A circle whose membership and records have logged changes (rows the admin shows read-only)."""
    from circles.changes import PendingChange
    from circles.models import MembershipChange, RecordChange
    from executor.change_commit import commit_changes

    circle = Circle.objects.create(public_key=WalletKey.named("admin-gone").pubkey, name="gone")
    Member.objects.create(circle=circle, public_key=WalletKey.named("admin-gone-m").pubkey, role="member")
    added = MembershipChange.Action.ADDED
    MembershipChange.objects.create(circle=circle, action=added, subject="x", changed_by="op", source="admin")
    deletion = PendingChange("notes", "a", RecordChange.Op.DELETE, 0, None, "admin:op", "admin")
    commit_changes(circle.id, [deletion])
    assert RecordChange.objects.filter(circle=circle).exists()
    return circle


def test_an_operator_deletes_a_circle_with_its_logs(operator: Client) -> None:
    circle = circle_with_history()
    url = reverse("admin:circles_circle_delete", args=[circle.id])
    confirm = operator.get(url)
    assert confirm.status_code == 200
    assert b"would require deleting the following protected" not in confirm.content
    assert b"your account doesn't have permission" not in confirm.content
    assert operator.post(url, {"post": "yes"}).status_code == 302
    assert not Circle.objects.filter(id=circle.id).exists()


def test_the_selected_circles_action_deletes_them_with_their_logs(operator: Client) -> None:
    circle = circle_with_history()
    changelist = reverse("admin:circles_circle_changelist")
    form = {"action": "delete_selected", "_selected_action": [circle.id], "post": "yes"}
    assert operator.post(changelist, form).status_code == 302
    assert not Circle.objects.filter(id=circle.id).exists()


@pytest.mark.parametrize("model", ["recordchange", "membershipchange"])
def test_a_log_row_alone_cannot_be_deleted(operator: Client, model: str) -> None:
    from circles.models import MembershipChange, RecordChange

    circle_with_history()
    row = (RecordChange if model == "recordchange" else MembershipChange).objects.first()
    assert row is not None
    assert operator.get(reverse(f"admin:circles_{model}_delete", args=[row.id])).status_code == 403
    changelist = reverse(f"admin:circles_{model}_changelist")
    operator.post(changelist, {"action": "delete_selected", "_selected_action": [row.id], "post": "yes"})
    assert type(row).objects.filter(id=row.id).exists()
