"""Roles shared between sign-ins (circles.role_cache): reused while the membership version holds."""

import pytest
from asgiref.sync import sync_to_async

from circles import role_cache
from circles.lookups import CircleInfo
from circles.models import Circle, Member
from circles.roles import Role
from executor import membership_notices
from tests.helpers.keys import WalletKey

pytestmark = pytest.mark.django_db(transaction=True)

KEY = WalletKey.named("role-cache-key").pubkey


def info(circle: Circle) -> CircleInfo:
    return CircleInfo(id=circle.id, public_key=circle.public_key, name=circle.name)


@pytest.fixture
def notices_subscribed(settings, redis_server, monkeypatch) -> None:
    """Redis mode with the membership listener subscribed: the only state in which roles are shared."""
    settings.REDIS_URL = redis_server.url
    monkeypatch.setattr(membership_notices.versions, "subscribed", True)


async def test_a_membership_change_is_seen_by_the_next_sign_in(circle: Circle, notices_subscribed) -> None:
    role_cache._roles.clear()
    assert (await role_cache.role_at_sign_in(info(circle), KEY))[0] == Role.GUEST
    await sync_to_async(Member.objects.create)(circle=circle, public_key=KEY, role="member")
    assert (await role_cache.role_at_sign_in(info(circle), KEY))[0] == Role.GUEST  # reused: version unchanged
    membership_notices.changed(circle.id)  # what every membership change does on commit
    role, version = await role_cache.role_at_sign_in(info(circle), KEY)
    assert role == Role.MEMBER and version == membership_notices.versions.current(circle.id)


async def test_embedded_mode_without_a_notice_file_reads_every_sign_in(circle: Circle, settings) -> None:
    """Embedded on PostgreSQL (as here) no notice reaches a server from another process's change;
    only a SQLite file has the notice file beside it (tests/e2e/test_membership.py)."""
    settings.REDIS_URL = ""
    role_cache._roles.clear()
    assert (await role_cache.role_at_sign_in(info(circle), KEY))[0] == Role.GUEST
    await sync_to_async(Member.objects.create)(circle=circle, public_key=KEY, role="member")
    assert (await role_cache.role_at_sign_in(info(circle), KEY))[0] == Role.MEMBER


async def test_nothing_is_reused_with_a_zero_cache_time(circle: Circle, settings, notices_subscribed) -> None:
    settings.CIRCLES_ROLE_CACHE_SECONDS = 0
    role_cache._roles.clear()
    await role_cache.role_at_sign_in(info(circle), KEY)
    assert role_cache._roles == {}
