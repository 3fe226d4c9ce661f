"""Roles read at sign-in, shared by the connections of this process (a reconnect storm reads each once).

A circle's whole roster (every member's address and role, one query) is read by the first
sign-in that needs it and answers every sign-in after it, members and guests alike, while the
circle's membership version (`executor.membership_notices`) is the one taken before the read, and
for at most `CIRCLES_ROLE_CACHE_SECONDS`: the same trust a connection already gives its own role
(`CircleSession.may_play_without_lookup`), so no membership change is missed for longer. Sign-ins
that arrive while it is being read wait for that one read. A circle of more than `ROSTER_MAX`
members is not held whole: there a role read for (circle, key) is reused instead, on the same
terms. All of this only while a change made in any process is heard here
(`membership_notices.heard_from_every_process`: Redis notices subscribed, or embedded mode on
SQLite with its notice file): otherwise (Redis away, or an embedded database without that file)
every sign-in reads its role.

A sign-in that reads costs a database hop on the thread pool: over half of a WebSocket sign-in's
server CPU (docs/benchmarks/ws_rpc.md), and in a reconnect storm every key is a new one, so a
cache of single keys never hits; the roster makes it one read per circle.
"""

import asyncio
import time
from dataclasses import dataclass

from django.conf import settings

from circles.lookups import CircleInfo, member_roles, role_in_circle
from circles.roles import Role, role_of
from circles.subjects import address_of
from executor import membership_notices

MAX_ENTRIES = 50_000
ROSTER_MAX = 20_000  # members of a circle held whole (about 150 bytes each)
_roles: dict[tuple[int, str], tuple[Role, membership_notices.Version, float]] = {}


@dataclass(frozen=True, slots=True)
class Roster:
    """A circle's members as read at `version`: address → role, or None when it has too many."""

    roles: dict[str, str] | None
    version: membership_notices.Version
    read_at: float


_rosters: dict[int, Roster] = {}
_reading: dict[int, asyncio.Future[Roster]] = {}


async def role_at_sign_in(circle: CircleInfo, key: str) -> tuple[Role, membership_notices.Version]:
    """The role of `key` in `circle` and the membership version it is valid at (read, or reused)."""
    version = membership_notices.versions.current(circle.id)
    ttl = settings.CIRCLES_ROLE_CACHE_SECONDS
    if ttl <= 0 or not membership_notices.heard_from_every_process():
        return await role_in_circle(circle, key), version
    if key == circle.public_key:
        return Role.OWNER, version
    roster = await _roster(circle.id, version, ttl)
    if roster.roles is not None:
        member_role = roster.roles.get(address_of(key))
        return role_of(key, circle_key=circle.public_key, member_role=member_role), version
    return await _role_of_one(circle, key, version, ttl), version


async def _roster(circle_id: int, version: membership_notices.Version, ttl: float) -> Roster:
    """The circle's roster valid at `version`: the one held, or one read now (once, however many
    sign-ins ask at the same moment)."""
    held = _rosters.get(circle_id)
    if held is not None and held.version == version and time.monotonic() - held.read_at < ttl:
        return held
    reading = _reading.get(circle_id)
    if reading is not None and not reading.done():
        roster = await asyncio.shield(reading)
        if roster.version == version:
            return roster
    future: asyncio.Future[Roster] = asyncio.get_running_loop().create_future()
    _reading[circle_id] = future
    try:
        read_at = time.monotonic()
        roster = Roster(await member_roles(circle_id, ROSTER_MAX), version, read_at)
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: the waiters get it, and an unwaited one logs nothing
        raise
    finally:
        if _reading.get(circle_id) is future:
            del _reading[circle_id]
    future.set_result(roster)
    if len(_rosters) >= MAX_ENTRIES:
        _rosters.clear()
    _rosters[circle_id] = roster
    return roster


async def _role_of_one(circle: CircleInfo, key: str, version: membership_notices.Version, ttl: float) -> Role:
    """The role of one key of a circle too big to hold whole, reused on the same terms."""
    now = time.monotonic()
    entry = _roles.get((circle.id, key))
    if entry is not None and entry[1] == version and now - entry[2] < ttl:
        return entry[0]
    role = await role_in_circle(circle, key)
    if len(_roles) >= MAX_ENTRIES:
        _roles.clear()
    _roles[(circle.id, key)] = (role, version, now)
    return role
