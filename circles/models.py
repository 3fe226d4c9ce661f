"""Circles and their members."""

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from auth_secp import InvalidAddress, InvalidPublicKey, canonical_address, canonical_public_key
from circles.roles import Role, role_of
from circles.subjects import address_of

# Already canonical keys (the common case) skip the curve arithmetic of canonicalisation.
_LOOKS_CANONICAL = re.compile(r"0[23][0-9a-f]{64}\Z")


def validate_public_key(value: str) -> None:
    """Django validator: `value` must be a secp256k1 public key in hex."""
    try:
        canonical_public_key(value)
    except InvalidPublicKey as exc:
        raise ValidationError(str(exc)) from exc


class PublicKeyField(models.CharField):
    """A secp256k1 public key, stored in canonical form (compressed, lowercase hex, no 0x)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 66)
        kwargs.setdefault("validators", [validate_public_key])
        super().__init__(*args, **kwargs)

    def get_prep_value(self, value: Any) -> Any:
        """Canonicalise on the way into the database so lookups by any accepted form match."""
        value = super().get_prep_value(value)
        if value and not _LOOKS_CANONICAL.match(value):
            try:
                return canonical_public_key(value)
            except InvalidPublicKey:
                return value
        return value


class Circle(models.Model):
    """A community, identified by its secp256k1 public key; the holder of that key is its owner."""

    public_key = PublicKeyField(unique=True, help_text="Compressed secp256k1 public key, hex.")
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True, help_text="Inactive circles refuse connections (4404).")
    allow_guests = models.BooleanField(
        default=False, help_text="Let any signed-in key run scripts, not only members."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or self.public_key[:16]

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Store the key canonically whatever form it was given in."""
        self.public_key = canonical_public_key(self.public_key)
        super().save(*args, **kwargs)

    def role_for(self, pubkey: str) -> Role:
        """The role of a canonical public key in this circle (one query unless it is the owner).

        A member is found by its key's Ethereum address, so a key added by address only
        (`circle::add_member("0x…", role)`) has its role as soon as it signs in.
        """
        member_role = None
        if pubkey != self.public_key:
            member_role = (
                self.members.filter(address=address_of(pubkey)).values_list("role", flat=True).first()
            )
        return role_of(pubkey, circle_key=self.public_key, member_role=member_role)


class Member(models.Model):
    """A key given a role in a circle (anyone else who signs in is an uninvited guest).

    A member is identified by its Ethereum address, always set; its public key is set too
    unless it was added by address only (the key is then learnt nowhere: the address
    suffices to recognise it at sign-in). A `guest` row is an invited guest: it may run
    scripts (read-only, as any guest) even in a circle that does not allow guests.
    """

    class MemberRole(models.TextChoices):
        ADMIN = Role.ADMIN.value, "admin"
        MEMBER = Role.MEMBER.value, "member"
        GUEST = Role.GUEST.value, "guest (invited)"

    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="members")
    public_key = PublicKeyField(
        null=True, blank=True, help_text="Blank when the member was added by address."
    )
    address = models.CharField(
        max_length=42, blank=True, help_text="Ethereum address, lowercase; derived from the key when given."
    )
    role = models.CharField(max_length=16, choices=MemberRole.choices, default=MemberRole.MEMBER)
    display_name = models.CharField(max_length=200, blank=True)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["circle", "address"]
        constraints = [
            models.UniqueConstraint(fields=["circle", "public_key"], name="unique_member_per_circle"),
            models.UniqueConstraint(fields=["circle", "address"], name="unique_member_address_per_circle"),
        ]

    def __str__(self) -> str:
        return f"{self.display_name or (self.public_key or self.address)[:16]} ({self.role})"

    def clean(self) -> None:
        """Admin forms: a key or an address is needed, and the two must agree."""
        try:
            self._canonicalise()
        except (InvalidPublicKey, InvalidAddress) as exc:
            raise ValidationError(str(exc)) from exc

    def _canonicalise(self) -> None:
        if self.public_key:
            self.public_key = canonical_public_key(self.public_key)
            derived = address_of(self.public_key)
            if self.address and canonical_address(self.address) != derived:
                raise InvalidAddress("the address is not the public key's address")
            self.address = derived
        elif self.address:
            self.public_key = None
            self.address = canonical_address(self.address)
        else:
            raise InvalidPublicKey("a member needs a public key or an Ethereum address")

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Store the key and address canonically whatever form they were given in."""
        self._canonicalise()
        super().save(*args, **kwargs)


class Record(models.Model):
    """One document of a circle's data, written by scripts through `db::put` (collection + key → JSON map)."""

    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="records")
    collection = models.CharField(max_length=64)
    key = models.CharField(max_length=200)
    data = models.JSONField(default=dict)
    size = models.PositiveIntegerField(default=0, help_text="Bytes of the JSON data, for the per-circle cap.")
    version = models.PositiveIntegerField(default=1)
    updated_by = models.CharField(max_length=66, help_text="Caller id of the last writer (key or provider).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["circle", "collection", "key"]
        constraints = [
            models.UniqueConstraint(fields=["circle", "collection", "key"], name="unique_record_key"),
        ]

    def __str__(self) -> str:
        return f"{self.collection}/{self.key}"


class MembershipChange(models.Model):
    """Who changed a circle's membership or settings, when, and through which run (an audit trail).

    Written in the same transaction as the change: a `circle::` call inside a script run (with
    the run's id, its ScriptRun row when the recording policy kept one), `manage.py
    load_circles` or `add_member`, or an operator in the Django admin.
    """

    class Action(models.TextChoices):
        ADDED = "added"
        ROLE = "role", "role changed"
        REMOVED = "removed"
        SETTINGS = "settings", "circle settings changed"

    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="membership_changes")
    action = models.CharField(max_length=16, choices=Action.choices)
    subject = models.CharField(
        max_length=66, blank=True, help_text="The member's public key, or its address when added by address."
    )
    old_role = models.CharField(max_length=16, blank=True)
    new_role = models.CharField(max_length=16, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="Settings changed: field -> [old, new].")
    changed_by = models.CharField(max_length=120, help_text="The caller id, or the command / admin user.")
    changed_by_role = models.CharField(max_length=16, blank=True)
    source = models.CharField(max_length=40, help_text="ws, webhook:<provider>, init, load_circles, admin…")
    run_id = models.UUIDField(null=True, blank=True, db_index=True, help_text="The script run that did it.")
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.subject[:16]} by {self.changed_by[:16]}"


class ChangeCounter(models.Model):
    """A circle's running counters: the last change sequence number given out, and the bytes its
    records take (its row is locked while a run commits, and both move in that one statement).

    A table of its own, not columns of `Circle`: saving a circle (the admin does, whole rows)
    must never write an old number back.
    """

    circle = models.OneToOneField(Circle, on_delete=models.CASCADE, primary_key=True, related_name="+")
    last_seq = models.BigIntegerField(default=0)
    record_bytes = models.BigIntegerField(
        default=0, help_text="The sum of its records' sizes, kept by every committed write (the storage cap)."
    )

    def __str__(self) -> str:
        return f"{self.circle_id}@{self.last_seq}"


class RecordChange(models.Model):
    """One committed write to a circle's records, numbered gap-free in commit order (the change log).

    Appended in the writing run's transaction (`circles.changes.append_changes`), so a run
    that rolls back leaves neither its writes nor their numbers. Kept for a retention window
    (CIRCLES_CHANGES_KEEP_PER_CIRCLE, CIRCLES_CHANGES_KEEP_DAYS).
    """

    class Op(models.TextChoices):
        PUT = "put"
        DELETE = "delete"

    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="record_changes")
    seq = models.BigIntegerField()
    collection = models.CharField(max_length=64)
    key = models.CharField(max_length=200)
    op = models.CharField(max_length=8, choices=Op.choices)
    version = models.PositiveIntegerField(help_text="The record's version after the change (0 for a delete).")
    data = models.JSONField(null=True, blank=True, help_text="The record's data after a put.")
    updated_by = models.CharField(max_length=120)
    updated_at = models.DateTimeField()
    source = models.CharField(max_length=40, help_text="ws, job, webhook:<provider>, init, admin…")

    class Meta:
        ordering = ["circle", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["circle", "seq"], name="unique_change_seq"),
        ]
        indexes = [models.Index(fields=["updated_at"], name="record_change_age")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.op} {self.collection}/{self.key}"
