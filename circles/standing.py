"""A subscriber's standing in its circle, read again when it may have changed (records and jobs topics).

`ReaderGate` trusts the role read at subscribe (or at the last re-read) until a membership change
of the circle is heard, or, where changes may go unheard, for CIRCLES_ROLE_CACHE_SECONDS; then the
subscription's next notification waits for `recheck` (`circles.record_stream`, and
`circles.subscriptions` for a jobs subscription).
"""

import time

from circles.jsonrpc import RpcError
from circles.methods import check_player
from circles.session import CircleSession
from executor import membership_notices


async def check_reader(session: CircleSession) -> None:
    """Raise unless the session may read the circle's records: `play`'s check (-32001, -32003)."""
    await check_player(session)


class ReaderGate:
    """A records subscriber's standing, read again after a membership change of the circle (and,
    without Redis notices, at least every CIRCLES_ROLE_CACHE_SECONDS) (`circles.record_stream.Gate`)."""

    def __init__(self, session: CircleSession) -> None:
        self.session = session
        self.version = membership_notices.versions.current(session.circle.id)
        self.checked_at = time.monotonic()

    def trusted(self) -> bool:
        """Whether no membership change was heard since the last read; where changes may go
        unheard (no Redis notices: embedded mode, Redis away), also that the read is recent.

        Heard notices need no time bound: re-reading every subscriber's role every few seconds
        would put a database read per subscriber on the fan-out of a busy circle.
        """
        if membership_notices.versions.current(self.session.circle.id) != self.version:
            return False
        if membership_notices.trusted():
            return True
        return time.monotonic() - self.checked_at < self.session.limits.role_cache_seconds

    async def recheck(self) -> RpcError | None:
        """`play`'s check again: None when the caller may still read, else its refusal."""
        version = membership_notices.versions.current(self.session.circle.id)
        try:
            await check_reader(self.session)
        except RpcError as error:
            return error
        self.version, self.checked_at = version, time.monotonic()
        return None
