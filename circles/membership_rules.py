"""Who may change a circle's membership and settings (pure logic, no database).

* the owner may do all of it (an operator's command acts with the owner's rights);
* an admin, and a webhook's `service` run, may add, re-role and remove members and invited
  guests, but may not touch admins (not add one, not make one, not change or remove one) nor
  the circle's settings;
* members and guests may do none of it;
* nobody removes the owner or changes its role (the owner is the circle's own key).
"""

from circles.roles import Role

SERVICE = "service"  # webhook providers' runs
OPERATOR = "operator"  # manage.py load_circles / add_member
GRANTABLE = (Role.ADMIN.value, Role.MEMBER.value, Role.GUEST.value)  # roles a Member row can have
_FULL = (Role.OWNER.value, OPERATOR)
_LIMITED = (Role.ADMIN.value, SERVICE)
_BELOW_ADMIN = (Role.MEMBER.value, Role.GUEST.value)


class NotAllowed(Exception):
    """A membership change the caller may not make; the message says why."""


def check_role_name(role: object) -> str:
    """`role` if it is one a member can be given, else NotAllowed."""
    if role not in GRANTABLE:
        raise NotAllowed(f"role must be admin, member or guest, not {role!r}")
    return role  # type: ignore[return-value]


def _may_manage(actor: str) -> None:
    if actor not in _FULL and actor not in _LIMITED:
        raise NotAllowed(f"role {actor} may not change membership; owner or admin needed")


def check_add(actor: str, role: str) -> None:
    """May `actor` add a member with `role`?"""
    _may_manage(actor)
    if actor in _LIMITED and role not in _BELOW_ADMIN:
        raise NotAllowed(f"{_who(actor)} may not add admins; only the owner may")


def check_set_role(actor: str, current: str, new: str) -> None:
    """May `actor` change a member's role from `current` to `new`?"""
    _may_manage(actor)
    if actor in _LIMITED and current not in _BELOW_ADMIN:
        raise NotAllowed(f"{_who(actor)} may not change an admin's role; only the owner may")
    if actor in _LIMITED and new not in _BELOW_ADMIN:
        raise NotAllowed(f"{_who(actor)} may not make admins; only the owner may")


def check_remove(actor: str, current: str) -> None:
    """May `actor` remove a member whose role is `current`?"""
    _may_manage(actor)
    if actor in _LIMITED and current not in _BELOW_ADMIN:
        raise NotAllowed(f"{_who(actor)} may not remove admins; only the owner may")


def check_settings(actor: str) -> None:
    """May `actor` change the circle's name, description or guest setting?"""
    if actor not in _FULL:
        raise NotAllowed(f"role {actor} may not change the circle's settings; only the owner may")


def _who(actor: str) -> str:
    return "an admin" if actor == Role.ADMIN.value else "a webhook run"
