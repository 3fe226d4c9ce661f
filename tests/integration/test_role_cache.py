"""Roles shared between sign-ins (circles.role_cache): reused while the membership version holds."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from circles import role_cache
from circles.lookups import CircleInfo
from circles.models import Circle, Member
from circles.roles import Role
from circles.subjects import address_of
from executor import membership_notices
from tests.helpers.keys import WalletKey

pytestmark = pytest.mark.django_db(transaction=True)

KEY = WalletKey.named("role-cache-key").pubkey


def info(circle: Circle) -> CircleInfo:
    return CircleInfo(id=circle.id, public_key=circle.public_key, name=circle.name)


@pytest.fixture(autouse=True)
def nothing_cached() -> None:
    role_cache._roles.clear()
    role_cache._rosters.clear()


@pytest.fixture
def counted_roster_reads(monkeypatch) -> list[int]:
    """The real roster read, counted."""
    reads: list[int] = []
    real = role_cache.member_roles

    async def counted(circle_id: int, most: int):
        reads.append(circle_id)
        return await real(circle_id, most)

    monkeypatch.setattr(role_cache, "member_roles", counted)
    return reads


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
    assert role_cache._roles == {} and role_cache._rosters == {}


def add_members(circle: Circle, count: int, role: str = "member") -> list[str]:
    keys = [WalletKey.named(f"role-cache-{role}-{number}").pubkey for number in range(count)]
    Member.objects.bulk_create(
        [Member(circle=circle, public_key=key, address=address_of(key), role=role) for key in keys]
    )
    return keys


async def test_a_storm_of_new_keys_reads_the_roster_once_and_every_role_is_right(
    circle: Circle, notices_subscribed, counted_roster_reads
) -> None:
    members = await sync_to_async(add_members)(circle, 30)
    admins = await sync_to_async(add_members)(circle, 3, "admin")
    guests = [WalletKey.named(f"role-cache-stranger-{number}").pubkey for number in range(30)]
    keys = members + admins + guests + [circle.public_key]
    roles = await asyncio.gather(*(role_cache.role_at_sign_in(info(circle), key) for key in keys))
    assert [role for role, _ in roles] == (
        [Role.MEMBER] * 30 + [Role.ADMIN] * 3 + [Role.GUEST] * 30 + [Role.OWNER]
    )
    assert counted_roster_reads == [circle.id]  # one read for 64 sign-ins arriving together

    await sync_to_async(Member.objects.filter(public_key=members[0]).update)(role="admin")
    membership_notices.changed(circle.id)
    assert (await role_cache.role_at_sign_in(info(circle), members[0]))[0] == Role.ADMIN
    assert counted_roster_reads == [circle.id, circle.id]  # the change made it read again


async def test_a_roster_older_than_the_cache_time_is_read_again(
    circle: Circle, settings, notices_subscribed, counted_roster_reads
) -> None:
    settings.CIRCLES_ROLE_CACHE_SECONDS = 0.2
    await role_cache.role_at_sign_in(info(circle), KEY)
    await role_cache.role_at_sign_in(info(circle), KEY)
    await asyncio.sleep(0.3)
    await role_cache.role_at_sign_in(info(circle), KEY)
    assert counted_roster_reads == [circle.id, circle.id]


async def test_a_circle_too_big_to_hold_whole_reuses_roles_key_by_key(
    circle: Circle, notices_subscribed, counted_roster_reads, monkeypatch
) -> None:
    monkeypatch.setattr(role_cache, "ROSTER_MAX", 2)
    members = await sync_to_async(add_members)(circle, 3)
    for _ in range(2):
        assert (await role_cache.role_at_sign_in(info(circle), members[2]))[0] == Role.MEMBER
        assert (await role_cache.role_at_sign_in(info(circle), KEY))[0] == Role.GUEST
    assert role_cache._rosters[circle.id].roles is None  # too many: held as "not whole"
    assert set(role_cache._roles) == {(circle.id, members[2]), (circle.id, KEY)}
    assert counted_roster_reads == [circle.id]
