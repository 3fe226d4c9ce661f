"""Sign-in tickets: nonces issued over HTTP (`GET /auth/nonce`) and redeemed on any connection.

A :class:`Ticket` is like a connection's :class:`~auth_secp.challenge.Challenge`, but its key and
circle are optional: the text binds the server always, and the key and the circle when the client
named them. Storing, expiring and single use are the nonce store's job; this module only makes the
text, finds the nonce in what a client sends back, and checks a signature. Pure Python, no I/O.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auth_secp.challenge import NONCE_BITS, InvalidCredentials, canonical_subject
from auth_secp.keys import InvalidAddress, InvalidPublicKey, ethereum_address, to_checksum_address
from auth_secp.signatures import recover_public_key, verify_signature

__all__ = ["Ticket", "nonce_id", "redeem_ticket"]

_NONCE_HEX = NONCE_BITS // 4
_ID = re.compile(rf"[0-9a-f]{{{_NONCE_HEX}}}")
_NONCE_LINE = re.compile(rf"^Nonce: ([0-9a-f]{{{_NONCE_HEX}}})$", re.MULTILINE)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Ticket:
    """One HTTP-issued nonce: ``subject`` and ``circle`` are canonical, or None when not bound."""

    server: str
    nonce: str
    issued_at: int  # unix seconds
    expires_at: int  # unix seconds
    subject: str | None = None
    circle: str | None = None

    @classmethod
    def issue(
        cls, server: str, now: float, ttl: int, *, subject: str | None = None, circle: str | None = None
    ) -> Ticket:
        """A fresh ticket valid for ``ttl`` seconds from ``now`` (unix seconds).

        ``subject`` (key or address) and ``circle`` (public key) must already be canonical.
        """
        issued = int(now)
        return cls(server, secrets.token_hex(NONCE_BITS // 8), issued, issued + ttl, subject, circle)

    @property
    def text(self) -> str:
        """The exact message the client signs (EIP-191, UTF-8); the same lines as a Challenge's."""
        head = f"{self.server} asks you to sign in"
        lines = [head if self.circle is None else f"{head} to circle {self.circle}"]
        if self.subject is not None:
            if self.subject.startswith("0x"):
                lines.append(f"Address: {to_checksum_address(self.subject)}")
            else:
                lines.append(f"Public key: {self.subject}")
        lines.append(f"Nonce: {self.nonce}")
        lines.append(f"Issued At: {_iso(datetime.fromtimestamp(self.issued_at, UTC))}")
        lines.append(f"Expiration Time: {_iso(datetime.fromtimestamp(self.expires_at, UTC))}")
        return "\n".join(lines)

    def to_record(self) -> dict[str, Any]:
        """The ticket as a JSON-ready dict (what the nonce store keeps)."""
        return {
            "server": self.server,
            "nonce": self.nonce,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "subject": self.subject,
            "circle": self.circle,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Ticket:
        """The ticket :meth:`to_record` stored."""
        return cls(
            server=record["server"],
            nonce=record["nonce"],
            issued_at=int(record["issued_at"]),
            expires_at=int(record["expires_at"]),
            subject=record.get("subject"),
            circle=record.get("circle"),
        )


def nonce_id(sent: object) -> str | None:
    """The nonce a client names: the bare 32 hex digits, or the whole text (its ``Nonce:`` line).

    Returns None when ``sent`` holds neither (not a string, no or several nonce lines).
    """
    if not isinstance(sent, str):
        return None
    if _ID.fullmatch(sent):
        return sent
    found = _NONCE_LINE.findall(sent)
    return found[0] if len(found) == 1 else None


def redeem_ticket(ticket: Ticket, sent: str, subject: str, signature: str, circle: str, now: float) -> str:
    """Check a sign-in with ``ticket`` at ``circle`` and return the signer's canonical public key.

    ``sent`` is what the client passed as the nonce (the id, or the whole text, which must then be
    the ticket's text exactly). Raises :class:`InvalidCredentials`: "expired", "subject mismatch"
    (another key than the ticket names, or a malformed one), "wrong circle" or "bad signature".
    """
    if now >= ticket.expires_at:
        raise InvalidCredentials("expired")
    if sent != ticket.nonce and sent != ticket.text:
        raise InvalidCredentials("bad signature")  # another text than the one issued
    try:
        canonical = canonical_subject(subject)
    except (InvalidPublicKey, InvalidAddress):
        raise InvalidCredentials("subject mismatch") from None
    if ticket.subject is not None and canonical != ticket.subject:
        raise InvalidCredentials("subject mismatch")
    if ticket.circle is not None and ticket.circle != circle:
        raise InvalidCredentials("wrong circle")
    text = ticket.text
    if canonical.startswith("0x"):
        key = recover_public_key(text, signature)
        if key is None or ethereum_address(key).lower() != canonical:
            raise InvalidCredentials("bad signature")
        return key
    if not verify_signature(canonical, text, signature):
        raise InvalidCredentials("bad signature")
    return canonical
