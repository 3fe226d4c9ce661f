"""Roles read at sign-in, shared by the connections of this process (a reconnect storm reads each once).

A role read for (circle, key) is reused by the next sign-in of that key in that circle while the
circle's membership version (`executor.membership_notices`) is the one taken before the read, and
for at most `CIRCLES_ROLE_CACHE_SECONDS`: the same trust a connection already gives its own role
(`CircleSession.may_play_without_lookup`), so no membership change is missed for longer. Only
while a change made in any process is heard here (`membership_notices.heard_from_every_process`:
Redis notices subscribed, or embedded mode on SQLite with its notice file): otherwise (Redis away,
or an embedded database without that file) every sign-in reads its role.

A sign-in that reads costs a database hop on the thread pool: over half of a WebSocket sign-in's
server CPU (docs/benchmarks/ws_rpc.md), hence the sharing.
"""

import time

from django.conf import settings

from circles.lookups import CircleInfo, role_in_circle
from circles.roles import Role
from executor import membership_notices

MAX_ENTRIES = 50_000
_roles: dict[tuple[int, str], tuple[Role, membership_notices.Version, float]] = {}


async def role_at_sign_in(circle: CircleInfo, key: str) -> tuple[Role, membership_notices.Version]:
    """The role of `key` in `circle` and the membership version it is valid at (read, or reused)."""
    version = membership_notices.versions.current(circle.id)
    now = time.monotonic()
    ttl = settings.CIRCLES_ROLE_CACHE_SECONDS
    entry = _roles.get((circle.id, key))
    shared = membership_notices.heard_from_every_process()
    if entry is not None and entry[1] == version and now - entry[2] < ttl and shared:
        return entry[0], version
    role = await role_in_circle(circle, key)
    if ttl > 0 and shared:
        if len(_roles) >= MAX_ENTRIES:
            _roles.clear()
        _roles[(circle.id, key)] = (role, version, now)
    return role, version
