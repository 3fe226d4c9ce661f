"""The database reads a connection makes, as coroutines for the consumer and the RPC methods."""

from channels.db import database_sync_to_async

from auth_secp import InvalidPublicKey, canonical_public_key
from circles.models import Circle, Member
from circles.roles import Role, role_of
from circles.session import CircleInfo


@database_sync_to_async
def find_active_circle(raw_key: str) -> CircleInfo | None:
    """The active circle addressed by `raw_key` (any accepted key form), or None."""
    try:
        key = canonical_public_key(raw_key)
    except InvalidPublicKey:
        return None
    row = Circle.objects.filter(public_key=key, is_active=True).values("id", "public_key", "name").first()
    return CircleInfo(**row) if row else None


@database_sync_to_async
def role_in_circle(circle: CircleInfo, pubkey: str) -> Role:
    """The role of `pubkey` in the circle (no query for the owner)."""
    member_role = None
    if pubkey != circle.public_key:
        member_role = (
            Member.objects.filter(circle_id=circle.id, public_key=pubkey)
            .values_list("role", flat=True)
            .first()
        )
    return role_of(pubkey, circle_key=circle.public_key, member_role=member_role)


@database_sync_to_async
def standing_in_circle(circle_id: int, pubkey: str) -> tuple[Role, bool]:
    """The current role of `pubkey` in the circle and whether the circle lets guests play."""
    circle = Circle.objects.only("public_key", "allow_guests").get(id=circle_id)
    return circle.role_for(pubkey), circle.allow_guests
