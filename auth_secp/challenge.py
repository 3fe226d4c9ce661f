"""Sign-in challenges: server-issued nonce messages that the client signs with ``personal_sign``.

One :class:`ChallengeBook` lives on each WebSocket connection and holds at most one outstanding
challenge. It does no I/O and never awaits, so it is safe to use from async consumer code.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from auth_secp.keys import (
    InvalidAddress,
    InvalidPublicKey,
    canonical_address,
    canonical_public_key,
    ethereum_address,
    to_checksum_address,
)
from auth_secp.signatures import recover_public_key, verify_signature

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "NONCE_BITS",
    "Challenge",
    "ChallengeBook",
    "InvalidCredentials",
    "canonical_subject",
]

DEFAULT_TTL_SECONDS: Final = 300
NONCE_BITS: Final = 128

Reason = Literal["no challenge", "subject mismatch", "expired", "bad signature", "wrong circle", "reused"]


class InvalidCredentials(Exception):
    """Sign-in failed. ``reason`` is for the server log only; clients should get a generic error."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(f"invalid credentials: {reason}")
        self.reason: Reason = reason


def canonical_subject(text: str) -> str:
    """Canonicalise a sign-in subject: a public key (see ``canonical_public_key``) or an address.

    ``0x`` plus 40 hex digits is an Ethereum address and becomes lowercase ``0x…``; anything else
    must be a public key. Raises :class:`InvalidAddress` or :class:`InvalidPublicKey` (both
    ``ValueError``).
    """
    # 20-byte addresses and 33/65-byte keys cannot be confused, so the length decides.
    if isinstance(text, str) and len(text) == 42 and text[:2] in ("0x", "0X"):
        return canonical_address(text)
    return canonical_public_key(text)


def _is_address(subject: str) -> bool:
    return subject.startswith("0x")  # canonical keys never carry 0x


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One nonce challenge. ``subject`` is the canonical public key or lowercase address."""

    server: str
    circle: str
    subject: str
    nonce: str
    issued_at: datetime
    expires_at: datetime

    @property
    def text(self) -> str:
        """The exact message the client must sign (EIP-191, UTF-8)."""
        if _is_address(self.subject):
            subject_line = f"Address: {to_checksum_address(self.subject)}"
        else:
            subject_line = f"Public key: {self.subject}"
        return (
            f"{self.server} asks you to sign in to circle {self.circle}\n"
            f"{subject_line}\n"
            f"Nonce: {self.nonce}\n"
            f"Issued At: {_iso(self.issued_at)}\n"
            f"Expiration Time: {_iso(self.expires_at)}"
        )

    def is_expired(self, now: datetime) -> bool:
        """Return whether the challenge is no longer valid at ``now`` (valid until, not at, expiry)."""
        return now >= self.expires_at


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _check_line(name: str, value: str) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "\r\n\x85\u2028\u2029"):
        # A line break here would let a crafted circle name forge the lines that follow it.
        raise ValueError(f"{name} must be a non-empty single-line string")
    return value


class ChallengeBook:
    """The outstanding sign-in challenge of one connection (at most one at a time)."""

    def __init__(
        self,
        server: str,
        circle: str,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """Create a book for ``server`` / ``circle`` with challenges valid for ``ttl`` seconds.

        ``clock`` returns the current timezone-aware time (injectable for tests).
        """
        self.server = _check_line("server", server)
        self.circle = _check_line("circle", circle)
        if not ttl > 0:
            raise ValueError("ttl must be positive")
        self.ttl = timedelta(seconds=ttl)
        self._clock = clock
        self._pending: Challenge | None = None

    @property
    def pending(self) -> Challenge | None:
        """The outstanding challenge, if any (it may already be expired)."""
        return self._pending

    def _now(self, now: datetime | None) -> datetime:
        moment = self._clock() if now is None else now
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("clock must return a timezone-aware datetime")
        # The text shows whole seconds; truncating keeps object and text in agreement.
        return moment.astimezone(UTC).replace(microsecond=0)

    def issue(self, subject: str, *, now: datetime | None = None) -> Challenge:
        """Issue a fresh challenge for ``subject`` (public key or address), replacing any earlier one.

        Raises ``InvalidPublicKey`` / ``InvalidAddress`` (``ValueError``) for a malformed subject,
        leaving any earlier challenge in place.
        """
        canonical = canonical_subject(subject)
        issued_at = self._now(now)
        challenge = Challenge(
            server=self.server,
            circle=self.circle,
            subject=canonical,
            nonce=secrets.token_hex(NONCE_BITS // 8),
            issued_at=issued_at,
            expires_at=issued_at + self.ttl,
        )
        self._pending = challenge
        return challenge

    def redeem(self, subject: str, signature: str, *, now: datetime | None = None) -> str:
        """Check ``signature`` over the outstanding challenge and return the canonical public key.

        The challenge is consumed by any attempt whose subject matches it, successful or not, so a
        nonce can be tried only once. An attempt naming another (or a malformed) subject fails
        with "subject mismatch" and leaves the challenge in place. For an address subject the
        signature must be 65-byte ``r‖s‖v``; the recovered key's address must equal the subject.
        Raises :class:`InvalidCredentials` with ``reason`` "no challenge", "subject mismatch",
        "expired" or "bad signature".
        """
        challenge = self._pending
        if challenge is None:
            raise InvalidCredentials("no challenge")
        try:
            canonical = canonical_subject(subject)
        except (InvalidPublicKey, InvalidAddress):
            raise InvalidCredentials("subject mismatch") from None
        if canonical != challenge.subject:
            raise InvalidCredentials("subject mismatch")
        self._pending = None
        if challenge.is_expired(self._now(now)):
            raise InvalidCredentials("expired")
        if _is_address(canonical):
            key = recover_public_key(challenge.text, signature)
            if key is None or ethereum_address(key).lower() != canonical:
                raise InvalidCredentials("bad signature")
            return key
        if not verify_signature(canonical, challenge.text, signature):
            raise InvalidCredentials("bad signature")
        return canonical
