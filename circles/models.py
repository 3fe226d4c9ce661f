"""Circles and their members."""

import re

from django.core.exceptions import ValidationError
from django.db import models

from auth_secp import InvalidPublicKey, canonical_public_key
from circles.roles import Role, role_of

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

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("max_length", 66)
        kwargs.setdefault("validators", [validate_public_key])
        super().__init__(*args, **kwargs)

    def get_prep_value(self, value):
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

    def save(self, *args, **kwargs) -> None:
        """Store the key canonically whatever form it was given in."""
        self.public_key = canonical_public_key(self.public_key)
        super().save(*args, **kwargs)

    def role_for(self, pubkey: str) -> Role:
        """The role of a canonical public key in this circle (one query unless it is the owner)."""
        member_role = None
        if pubkey != self.public_key:
            member_role = self.members.filter(public_key=pubkey).values_list("role", flat=True).first()
        return role_of(pubkey, circle_key=self.public_key, member_role=member_role)


class Member(models.Model):
    """A key given a role in a circle (anyone else who signs in is a guest)."""

    class MemberRole(models.TextChoices):
        ADMIN = Role.ADMIN.value, "admin"
        MEMBER = Role.MEMBER.value, "member"

    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="members")
    public_key = PublicKeyField()
    role = models.CharField(max_length=16, choices=MemberRole.choices, default=MemberRole.MEMBER)
    display_name = models.CharField(max_length=200, blank=True)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["circle", "public_key"]
        constraints = [
            models.UniqueConstraint(fields=["circle", "public_key"], name="unique_member_per_circle"),
        ]

    def __str__(self) -> str:
        return f"{self.display_name or self.public_key[:16]} ({self.role})"

    def save(self, *args, **kwargs) -> None:
        """Store the key canonically whatever form it was given in."""
        self.public_key = canonical_public_key(self.public_key)
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
