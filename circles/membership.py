"""Changing a circle's membership and settings: the rules checked, the change written and recorded.

Every change goes through here, whoever makes it: the `circle::` DSL functions inside a run's
transaction (`executor.dsl_circle`), `manage.py load_circles`, and the admin's edits. Each one
locks the circle's row (changes to one circle happen one at a time), checks the rules
(`circles.membership_rules`) against the caller's role **as it is now in the database** (not
the role its connection cached), writes a `MembershipChange` beside the change, and once the
transaction commits sends `membership_changed` (the executor's notices tell every process's role
cache, `executor.membership_notices`). Call these inside a transaction: a rolled-back one changes
nothing and tells nobody.
"""

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.dispatch import Signal

from circles.membership_rules import (
    OPERATOR,
    SERVICE,
    NotAllowed,
    check_add,
    check_remove,
    check_role_name,
    check_set_role,
    check_settings,
)
from circles.models import Circle, Member, MembershipChange
from circles.roles import Role
from circles.subjects import Subject, address_of

# Sent once a membership change is committed, with `circle_id`. Circle data sits below the
# processes that cache roles, so it announces the change and leaves the telling to them.
membership_changed = Signal()

NAME_MAX = 200
DESCRIPTION_MAX = 10_000
SETTINGS = {"name": str, "description": str, "allow_guests": bool}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: a caller id and the role it ran with, where from, in which run."""

    caller_id: str
    caller_role: str  # as the run was given it; re-read from the database for the rules
    source: str
    run_id: str | None = None

    @classmethod
    def operator(cls, name: str) -> "Actor":
        """A management command or an admin user: the owner's rights."""
        return cls(caller_id=name, caller_role=OPERATOR, source=name)


def _locked_circle(circle_id: int) -> Circle:
    return Circle.objects.select_for_update().get(id=circle_id)


def actor_role(circle: Circle, actor: Actor) -> str:
    """The role the rules apply to: `service` and `operator` as given, else the key's current role."""
    if actor.caller_role in (SERVICE, OPERATOR):
        return actor.caller_role
    if actor.caller_id == circle.public_key:
        return Role.OWNER.value
    try:
        address = address_of(actor.caller_id)
    except ValueError:
        return Role.GUEST.value
    row = circle.members.filter(address=address).values_list("role", flat=True).first()
    return row or Role.GUEST.value


def record_change(circle: Circle, actor: Actor, action: str, subject: str = "", **fields: Any) -> None:
    """Record a change made outside these functions (an operator's admin edit) and announce it."""
    _record(circle, actor, actor.caller_role, action, subject, **fields)


def _record(circle: Circle, actor: Actor, role: str, action: str, subject: str = "", **fields: Any) -> None:
    MembershipChange.objects.create(
        circle=circle,
        action=action,
        subject=subject,
        changed_by=actor.caller_id[:120],
        changed_by_role=role,
        source=actor.source[:40],
        run_id=actor.run_id or None,
        **fields,
    )
    transaction.on_commit(lambda: membership_changed.send(sender=Circle, circle_id=circle.id))


def _refuse_owner(circle: Circle, subject: Subject, what: str) -> None:
    if subject.pubkey == circle.public_key or subject.address == address_of(circle.public_key):
        raise NotAllowed(what)


def _member(circle: Circle, subject: Subject) -> Member | None:
    return circle.members.select_for_update().filter(address=subject.address).first()


def add_member(circle_id: int, actor: Actor, subject: Subject, role: object, name: object = "") -> bool:
    """Give `subject` `role`; True when added, False when it already had that role (NotAllowed else)."""
    role = check_role_name(role)
    if not isinstance(name, str) or len(name) > NAME_MAX:
        raise NotAllowed(f"name must be a string of at most {NAME_MAX} characters")
    circle = _locked_circle(circle_id)
    acting = actor_role(circle, actor)
    check_add(acting, role)
    _refuse_owner(circle, subject, "the owner is the circle's own key; it cannot be added as a member")
    existing = _member(circle, subject)
    if existing is not None:
        if existing.role != role:
            raise NotAllowed(f"{subject.shown} is already a member as {existing.role}; use circle::set_role")
        if (name and existing.display_name != name) or (subject.pubkey and not existing.public_key):
            existing.display_name = name or existing.display_name
            existing.public_key = existing.public_key or subject.pubkey
            existing.save(update_fields=["display_name", "public_key", "address"])
        return False
    Member.objects.create(
        circle=circle, public_key=subject.pubkey, address=subject.address, role=role, display_name=name
    )
    _record(circle, actor, acting, MembershipChange.Action.ADDED, subject.stored, new_role=role)
    return True


def set_role(circle_id: int, actor: Actor, subject: Subject, role: object) -> bool:
    """Change a member's role; True when it changed, False when it had it already."""
    role = check_role_name(role)
    circle = _locked_circle(circle_id)
    acting = actor_role(circle, actor)
    _refuse_owner(circle, subject, "the owner's role cannot be changed")
    existing = _member(circle, subject)
    if existing is None:
        check_set_role(acting, Role.GUEST.value, role)
        raise NotAllowed(f"{subject.shown} is not a member; use circle::add_member")
    check_set_role(acting, existing.role, role)
    if existing.role == role:
        return False
    old = existing.role
    existing.role = role
    existing.save(update_fields=["role"])
    _record(circle, actor, acting, MembershipChange.Action.ROLE, subject.stored, old_role=old, new_role=role)
    return True


def remove_member(circle_id: int, actor: Actor, subject: Subject) -> bool:
    """Remove a member; True when removed, False when it was not a member."""
    circle = _locked_circle(circle_id)
    acting = actor_role(circle, actor)
    _refuse_owner(circle, subject, "the owner cannot be removed")
    existing = _member(circle, subject)
    if existing is None:
        check_remove(acting, Role.GUEST.value)
        return False
    check_remove(acting, existing.role)
    existing.delete()
    _record(circle, actor, acting, MembershipChange.Action.REMOVED, subject.stored, old_role=existing.role)
    return True


def update_circle(circle_id: int, actor: Actor, changes: object) -> dict[str, list]:
    """Change the circle's `name`, `description` and/or `allow_guests`.

    Returns what changed: field -> [old, new] (empty when nothing did).
    """
    if not isinstance(changes, dict):
        raise NotAllowed("circle::update takes a map: #{name, description, allow_guests}")
    unknown = sorted(set(changes) - set(SETTINGS))
    if unknown:
        raise NotAllowed(f"unknown setting {unknown[0]!r}; settings are name, description, allow_guests")
    for field, kind in SETTINGS.items():
        if field in changes and not isinstance(changes[field], kind):
            raise NotAllowed(f"{field} must be a {'bool' if kind is bool else 'string'}")
    if len(changes.get("name", "")) > NAME_MAX:
        raise NotAllowed(f"name must be at most {NAME_MAX} characters")
    if len(changes.get("description", "")) > DESCRIPTION_MAX:
        raise NotAllowed(f"description must be at most {DESCRIPTION_MAX} characters")
    circle = _locked_circle(circle_id)
    acting = actor_role(circle, actor)
    check_settings(acting)
    done = {f: [getattr(circle, f), v] for f, v in changes.items() if getattr(circle, f) != v}
    if done:
        for field, (_, value) in done.items():
            setattr(circle, field, value)
        circle.save(update_fields=list(done))
        _record(circle, actor, acting, MembershipChange.Action.SETTINGS, details=done)
    return done
