"""The database reads a connection makes, as coroutines for the consumer and the RPC methods."""

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from channels.db import DatabaseSyncToAsync
from django.conf import settings

from auth_secp import InvalidPublicKey, canonical_public_key
from circles.models import Circle, Member
from circles.roles import Role, role_of
from circles.subjects import address_of


@dataclass(frozen=True, slots=True)
class CircleInfo:
    """What a connection needs to know of its circle, read once at connect."""

    id: int
    public_key: str
    name: str


P = ParamSpec("P")
T = TypeVar("T")


def database_read(func: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Run a read-only ORM function from async code on a thread pool.

    Channels' default sends every database call through one shared thread; these reads
    need no ordering with anything, and the pool hop costs less (docs/BENCHMARKS.md).
    """
    return DatabaseSyncToAsync(func, thread_sensitive=False)


# Active circles by key, with when to look again: a connect then costs no database hop
# (it was a fifth of a sign-in's server CPU, docs/BENCHMARKS.md). Only hits are kept, so a
# new circle is reachable at once; deactivating one takes up to CIRCLES_CIRCLE_CACHE_SECONDS.
_active_circles: dict[str, tuple[float, CircleInfo]] = {}
_MAX_CACHED_CIRCLES = 10_000


async def find_active_circle(raw_key: str) -> CircleInfo | None:
    """The active circle addressed by `raw_key` (any accepted key form), or None."""
    try:
        key = canonical_public_key(raw_key)
    except InvalidPublicKey:
        return None
    now = time.monotonic()
    cached = _active_circles.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    circle = await _load_active_circle(key)
    ttl = settings.CIRCLES_CIRCLE_CACHE_SECONDS
    if circle is not None and ttl > 0:
        if len(_active_circles) >= _MAX_CACHED_CIRCLES:
            _active_circles.clear()
        _active_circles[key] = (now + ttl, circle)
    return circle


@database_read
def _load_active_circle(key: str) -> CircleInfo | None:
    row = Circle.objects.filter(public_key=key, is_active=True).values("id", "public_key", "name").first()
    return CircleInfo(**row) if row else None


@database_read
def role_in_circle(circle: CircleInfo, pubkey: str) -> Role:
    """The role of `pubkey` in the circle (no query for the owner)."""
    return Circle(id=circle.id, public_key=circle.public_key).role_for(pubkey)


@database_read
def member_roles(circle_id: int, most: int) -> dict[str, str] | None:
    """Every member of the circle as address → role, or None when it has more than `most`."""
    rows = Member.objects.filter(circle_id=circle_id).values_list("address", "role")[: most + 1]
    roles = dict(rows)
    return roles if len(roles) <= most else None


@database_read
def standing_in_circle(circle_id: int, pubkey: str) -> tuple[Role, bool]:
    """The current role of `pubkey` in the circle and whether it may play as a guest.

    A guest may play where the circle allows guests, or when it was invited (a Member row
    with role `guest`).
    """
    circle = Circle.objects.only("public_key", "allow_guests").get(id=circle_id)
    if pubkey == circle.public_key:
        return Role.OWNER, circle.allow_guests
    row = circle.members.filter(address=address_of(pubkey)).values_list("role", flat=True).first()
    role = role_of(pubkey, circle_key=circle.public_key, member_role=row)
    return role, circle.allow_guests or row is not None
