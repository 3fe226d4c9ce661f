"""Applying a file of circles (`circles.circle_file`) to the database, all of it or nothing.

A circle is the one with the entry's `pubkey`, or, for an entry without one, the circle of that
name. A missing circle is created (with a new key pair when no pubkey is given) and its init
script runs once, as its owner, through the same job function as a `play`; an existing one gets
the entry's name, description, guest and active settings and members. Members the file does not
list are kept unless `prune` is set. Everything happens in one transaction: a bad entry or a
failing init script leaves the database as it was.
"""

from dataclasses import dataclass, field

import coincurve
from django.conf import settings
from django.db import transaction

from circles import membership
from circles.circle_file import CircleSpec, MemberSpec
from circles.membership_rules import NotAllowed
from circles.models import Circle
from circles.subjects import Subject
from executor.jobs import Job
from executor.run_rows import save_runs
from executor.runner import run_job

SOURCE = "load_circles"


class LoadRefused(Exception):
    """The load was rolled back; the message names the entry and says why."""


@dataclass(slots=True)
class Outcome:
    """What loading one entry did, for the command's report."""

    spec: CircleSpec
    public_key: str = ""
    created: bool = False
    private_key: str | None = None  # a generated key pair's private half, shown once
    init_run: str | None = None
    changes: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line of the report."""
        if self.created:
            extra = f" (init run {self.init_run})" if self.init_run else ""
            return f"created {self.spec.name}: {self.public_key}{extra}"
        if self.changes:
            return f"updated {self.spec.name}: {self.public_key}: {', '.join(self.changes)}"
        return f"unchanged {self.spec.name}: {self.public_key}"


def load_circles(specs: list[CircleSpec], *, prune: bool = False) -> list[Outcome]:
    """Apply every entry in one transaction; LoadRefused (nothing changed) on the first problem."""
    with transaction.atomic():
        return [_load_one(spec, prune) for spec in specs]


def _find(spec: CircleSpec) -> Circle | None:
    if spec.pubkey is not None:
        return Circle.objects.filter(public_key=spec.pubkey).first()
    found = list(Circle.objects.filter(name=spec.name)[:2])
    if len(found) > 1:
        raise LoadRefused(f"{spec.label}: several circles are named {spec.name!r}; give its pubkey")
    return found[0] if found else None


def _load_one(spec: CircleSpec, prune: bool) -> Outcome:
    outcome = Outcome(spec)
    circle = _find(spec)
    if circle is None:
        circle = _create(spec, outcome)
    outcome.public_key = circle.public_key
    actor = membership.Actor.operator(SOURCE)
    try:
        if not outcome.created:
            _settings(circle, spec, actor, outcome)
        if spec.members is not None:
            _members(circle, spec.members, actor, outcome, prune)
    except NotAllowed as exc:
        raise LoadRefused(f"{spec.label}: {exc}") from exc
    if outcome.created and spec.init:
        outcome.init_run = _run_init(circle, spec)
    return outcome


def _create(spec: CircleSpec, outcome: Outcome) -> Circle:
    public_key = spec.pubkey
    if public_key is None:
        private = coincurve.PrivateKey()
        outcome.private_key = private.to_hex()
        public_key = private.public_key.format(compressed=True).hex()
    outcome.created = True
    return Circle.objects.create(
        public_key=public_key,
        name=spec.name,
        description=spec.description or "",
        allow_guests=bool(spec.allow_guests),
        is_active=spec.active is not False,
    )


def _settings(circle: Circle, spec: CircleSpec, actor: membership.Actor, outcome: Outcome) -> None:
    wanted = {"name": spec.name, "description": spec.description, "allow_guests": spec.allow_guests}
    changed = membership.update_circle(circle.id, actor, {k: v for k, v in wanted.items() if v is not None})
    outcome.changes.extend(sorted(changed))
    if spec.active is not None and circle.is_active != spec.active:
        Circle.objects.filter(id=circle.id).update(is_active=spec.active)
        outcome.changes.append("active" if spec.active else "inactive")


def _members(
    circle: Circle, members: tuple[MemberSpec, ...], actor: membership.Actor, outcome: Outcome, prune: bool
) -> None:
    current = {m.address: m for m in circle.members.all()}
    for member in members:
        row = current.get(member.subject.address)
        if row is None:
            membership.add_member(circle.id, actor, member.subject, member.role, member.name)
            outcome.changes.append(f"+{member.subject.shown[:12]}… {member.role}")
            continue
        if row.role != member.role:
            membership.set_role(circle.id, actor, member.subject, member.role)
            outcome.changes.append(f"{member.subject.shown[:12]}… {row.role}→{member.role}")
        if member.name != row.display_name:
            circle.members.filter(id=row.id).update(display_name=member.name)
            outcome.changes.append(f"{member.subject.shown[:12]}… named {member.name!r}")
    if prune:
        listed = {member.subject.address for member in members}
        for address, row in current.items():
            if address not in listed:
                subject = Subject(address, row.public_key)
                membership.remove_member(circle.id, actor, subject)
                outcome.changes.append(f"-{subject.shown[:12]}…")


def _run_init(circle: Circle, spec: CircleSpec) -> str:
    job = Job.for_timeout(
        circle_id=circle.id,
        circle_key=circle.public_key,
        caller_id=circle.public_key,
        caller_role="owner",
        source="init",
        script=spec.init,
        timeout_ms=settings.CIRCLES_PLAY_MAX_TIMEOUT_MS,
    )
    report = run_job(job)
    save_runs([report.run_row(worker=SOURCE)])
    if not report.outcome["ok"]:
        error = report.outcome["error"]
        where = f" at line {error['line']}, column {error['column']}" if error.get("line") else ""
        message = f"[{error['kind']}] {error['message']}"
        raise LoadRefused(f"{spec.label}: the init script failed{where}: {message}")
    return job.run_id
