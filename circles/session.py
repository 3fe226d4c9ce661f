"""The state of one connection to a circle: who signed in, pending challenge, counters."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from auth_secp import ChallengeBook
from circles.jsonrpc import RpcError
from circles.limits import ConnectionLimits, TokenBucket
from circles.lookups import CircleInfo
from circles.roles import Role
from executor import membership_notices


class SignInGate(Protocol):
    """Counts a sign-in attempt from a client address: False when it is over the limit."""

    async def attempt(self, address: str | None) -> bool: ...


class PlayRunner(Protocol):
    """Runs a connection's `play` scripts (`circles.play`); one per connection, for its lifetime."""

    async def run(
        self, session: "CircleSession", script: str, timeout_ms: int, request_id: str
    ) -> dict[str, Any]:
        """Run `script` for the session's signed-in key; the `play` result (or raise RpcError).

        `request_id` is the `play`'s JSON-RPC id as JSON text, for the job's log lines.
        """
        ...

    def deliver(self, run_id: str, outcome: dict[str, Any]) -> None:
        """A worker's outcome for one of this connection's runs arrived (`script.result` event)."""

    def give_up(self, error: Callable[[], RpcError]) -> None:
        """Answer a fresh `error()` to every request still waiting (the server is shutting down)."""


@dataclass(slots=True)
class CircleSession:
    """One WebSocket connection's view of its circle; lives exactly as long as the connection."""

    circle: CircleInfo
    peer: str
    limits: ConnectionLimits
    challenges: ChallengeBook
    play_runner: PlayRunner
    address: str | None = None  # the client address (behind trusted proxies), None if unknown
    sign_ins: SignInGate | None = None  # the per-address sign-in attempts; None: not limited
    rate: TokenBucket = field(init=False)
    pubkey: str | None = None
    role: Role | None = None
    role_checked_at: float = 0.0
    role_version: membership_notices.Version = (-1, -1)  # the circle's membership version at that read
    failed_auth: int = 0
    subscriptions: Any = None  # the connection's `circles.subscriptions.Subscriptions`

    def __post_init__(self) -> None:
        self.rate = TokenBucket(self.limits.rate_per_second, self.limits.rate_burst)

    @property
    def authenticated(self) -> bool:
        """True once `authenticate` succeeded (and until `logout`)."""
        return self.pubkey is not None

    async def may_attempt_sign_in(self) -> bool:
        """Count one sign-in attempt against this client address's limit; False when over it."""
        return self.sign_ins is None or await self.sign_ins.attempt(self.address)

    def sign_in(self, pubkey: str, role: Role, version: membership_notices.Version | None = None) -> None:
        """Record a successful sign-in (`version`: the membership version before the role was read)."""
        self.pubkey = pubkey
        self.note_role_at(role, self.version_before_read() if version is None else version)

    def note_role(self, role: Role) -> None:
        """Record the signed-in key's role as just read from the database.

        The circle's membership version is taken before the read's result is trusted: a change
        committed during the read bumps it, so the next call reads again.
        """
        self.role = role
        self.role_checked_at = time.monotonic()

    def version_before_read(self) -> membership_notices.Version:
        """The membership version to pass to `note_role_at` for a role about to be read."""
        return membership_notices.versions.current(self.circle.id)

    def note_role_at(self, role: Role, version: membership_notices.Version) -> None:
        """Record a role read from the database after the membership version was `version`."""
        self.note_role(role)
        self.role_version = version

    def role_is_current(self) -> bool:
        """Whether no membership change of the circle was announced since the role was read."""
        now = membership_notices.versions.current(self.circle.id)
        return membership_notices.trusted() and self.role_version == now

    def may_play_without_lookup(self) -> bool:
        """True when a member-or-above role was read recently enough to trust without a query.

        Roles change rarely, and re-reading them cost a third of a `play`'s server CPU
        (docs/BENCHMARKS.md). A membership change bumps the circle's membership version
        (`executor.membership_notices`, in every process), which ends the trust at once; without
        notices (Redis away) the role is read for every call. `role_cache_seconds` bounds the
        trust in any case.
        """
        return (
            self.role is not None
            and self.role.at_least(Role.MEMBER)
            and self.role_is_current()
            and time.monotonic() - self.role_checked_at < self.limits.role_cache_seconds
        )

    def sign_out(self) -> None:
        """Forget the signed-in key."""
        self.pubkey = None
        self.role = None
