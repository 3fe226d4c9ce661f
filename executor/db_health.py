"""Django's connection clean-up between units of work, without a health-check ping per unit.

With CONN_HEALTH_CHECKS, `close_old_connections` (what Django runs around each request, and
`database_sync_to_async` around each call) marks every connection for a check, so the unit's
first statement is preceded by a `SELECT 1` round trip: a third of a job's database calls in an
ASGI process and one statement in five of a job slot's run (docs/benchmarks/jobs.md). Here a
connection that did work less than FRESH_SECONDS ago is trusted without the ping; one idle for
longer (the kind a database restart or an idle timeout leaves dead) is still checked. A
connection that failed meanwhile is checked either way (Django's `errors_occurred`).
"""

import time

from django.db import close_old_connections, connections

FRESH_SECONDS = 1.0
_LAST_USED = "_circles_last_used"  # on each connection wrapper: when this module last saw it used


def close_old_connections_lazily() -> None:
    """`close_old_connections`, then skip the health check of connections used within FRESH_SECONDS."""
    close_old_connections()
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        last = getattr(conn, _LAST_USED, None)
        fresh = last is not None and now - last < FRESH_SECONDS
        if fresh and conn.connection is not None and not conn.errors_occurred:
            conn.health_check_done = True  # type: ignore[attr-defined]  # set in its __init__ (Django 4.1+)
        setattr(conn, _LAST_USED, now)
