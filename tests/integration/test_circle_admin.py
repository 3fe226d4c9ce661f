"""The circle admin list: member counts come with the list's own query, not one query per circle."""

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
