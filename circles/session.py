"""The state of one connection to a circle: who signed in, pending challenge, counters."""

import time
from dataclasses import dataclass, field
from typing import Protocol

from auth_secp import ChallengeBook
from circles.jsonrpc import RpcError
from circles.limits import ConnectionLimits, TokenBucket
from circles.roles import Role


@dataclass(frozen=True, slots=True)
class CircleInfo:
    """What a connection needs to know of its circle, read once at connect."""

    id: int
    public_key: str
    name: str


class SignInGate(Protocol):
    """Counts a sign-in attempt from a client address: False when it is over the limit."""

    async def attempt(self, address: str | None) -> bool: ...


class ScriptRunner(Protocol):
    """Runs a `play` script for a session and returns the `play` result (or raises RpcError)."""

    async def __call__(self, session: "CircleSession", script: str, timeout_ms: int) -> dict: ...

    def give_up(self, error: RpcError) -> None:
        """Answer `error` to every request still waiting (the server is shutting down)."""


@dataclass(slots=True)
class CircleSession:
    """One WebSocket connection's view of its circle; lives exactly as long as the connection."""

    circle: CircleInfo
    peer: str
    limits: ConnectionLimits
    challenges: ChallengeBook
    run_script: ScriptRunner
    address: str | None = None  # the client address (behind trusted proxies), None if unknown
    sign_ins: SignInGate | None = None  # the per-address sign-in attempts; None: not limited
    rate: TokenBucket = field(init=False)
    pubkey: str | None = None
    role: Role | None = None
    role_checked_at: float = 0.0
    failed_auth: int = 0

    def __post_init__(self) -> None:
        self.rate = TokenBucket(self.limits.rate_per_second, self.limits.rate_burst)

    @property
    def authenticated(self) -> bool:
        """True once `authenticate` succeeded (and until `logout`)."""
        return self.pubkey is not None

    async def may_attempt_sign_in(self) -> bool:
        """Count one sign-in attempt against this client address's limit; False when over it."""
        return self.sign_ins is None or await self.sign_ins.attempt(self.address)

    def sign_in(self, pubkey: str, role: Role) -> None:
        """Record a successful sign-in."""
        self.pubkey = pubkey
        self.note_role(role)

    def note_role(self, role: Role) -> None:
        """Record the signed-in key's role as just read from the database."""
        self.role = role
        self.role_checked_at = time.monotonic()

    def may_play_without_lookup(self) -> bool:
        """True when a member-or-above role was read recently enough to trust without a query.

        Roles change rarely, and re-reading them cost a third of a `play`'s server CPU
        (docs/BENCHMARKS.md); a change takes effect within `role_cache_seconds`.
        """
        return (
            self.role is not None
            and self.role.at_least(Role.MEMBER)
            and time.monotonic() - self.role_checked_at < self.limits.role_cache_seconds
        )

    def sign_out(self) -> None:
        """Forget the signed-in key."""
        self.pubkey = None
        self.role = None
