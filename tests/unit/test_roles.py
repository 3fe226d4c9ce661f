"""Unit tests for circles.roles: the order of roles, role_of and may_play (no database)."""

import itertools

import orjson
import pytest

from circles.roles import Role, may_play, role_of

OWNER_KEY = "02" + "aa" * 32
OTHER_KEY = "03" + "bb" * 32
WEAKEST_FIRST = [Role.GUEST, Role.MEMBER, Role.ADMIN, Role.OWNER]


def test_values_are_the_wire_names() -> None:
    assert [role.value for role in WEAKEST_FIRST] == ["guest", "member", "admin", "owner"]
    assert set(Role) == set(WEAKEST_FIRST)
    assert Role("admin") is Role.ADMIN
    # whoami sends the role as a plain JSON string.
    assert orjson.dumps(Role.OWNER) == b'"owner"'
    assert str(Role.MEMBER) == "member" and Role.MEMBER == "member"


def test_rank_order() -> None:
    assert [role.rank for role in WEAKEST_FIRST] == [0, 1, 2, 3]


@pytest.mark.parametrize(("role", "minimum"), list(itertools.product(WEAKEST_FIRST, repeat=2)))
def test_at_least(role: Role, minimum: Role) -> None:
    assert role.at_least(minimum) == (WEAKEST_FIRST.index(role) >= WEAKEST_FIRST.index(minimum))


def test_at_least_examples() -> None:
    assert Role.OWNER.at_least(Role.ADMIN)
    assert Role.ADMIN.at_least(Role.ADMIN)
    assert not Role.MEMBER.at_least(Role.ADMIN)
    assert not Role.GUEST.at_least(Role.MEMBER)
    assert all(role.at_least(Role.GUEST) for role in Role)


def test_owner_is_the_circle_key() -> None:
    assert role_of(OWNER_KEY, circle_key=OWNER_KEY, member_role=None) is Role.OWNER


@pytest.mark.parametrize("member_role", ["admin", "member", "guest"])
def test_owner_wins_over_a_member_row(member_role: str) -> None:
    assert role_of(OWNER_KEY, circle_key=OWNER_KEY, member_role=member_role) is Role.OWNER


@pytest.mark.parametrize(("member_role", "role"), [("admin", Role.ADMIN), ("member", Role.MEMBER)])
def test_member_rows_give_their_role(member_role: str, role: Role) -> None:
    assert role_of(OTHER_KEY, circle_key=OWNER_KEY, member_role=member_role) is role


def test_anyone_else_is_a_guest() -> None:
    assert role_of(OTHER_KEY, circle_key=OWNER_KEY, member_role=None) is Role.GUEST


def test_unknown_member_role_is_refused() -> None:
    with pytest.raises(ValueError):
        role_of(OTHER_KEY, circle_key=OWNER_KEY, member_role="superuser")


@pytest.mark.parametrize(
    ("role", "allow_guests", "allowed"),
    [
        (Role.GUEST, False, False),
        (Role.GUEST, True, True),
        (Role.MEMBER, False, True),
        (Role.MEMBER, True, True),
        (Role.ADMIN, False, True),
        (Role.ADMIN, True, True),
        (Role.OWNER, False, True),
        (Role.OWNER, True, True),
    ],
)
def test_may_play(role: Role, allow_guests: bool, allowed: bool) -> None:
    assert may_play(role, allow_guests=allow_guests) is allowed
