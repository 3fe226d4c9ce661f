"""secp256k1 public keys and Ethereum addresses: parsing, validation and canonical forms.

The canonical public key is the 33-byte compressed point as lowercase hex without ``0x``.
The canonical address is ``0x`` followed by 40 lowercase hex digits; :func:`to_checksum_address`
gives the EIP-55 display form.
"""

from __future__ import annotations

import re
from functools import lru_cache

from coincurve import PublicKey
from Crypto.Hash import keccak

from auth_secp._hex import decode_hex

__all__ = [
    "InvalidAddress",
    "InvalidPublicKey",
    "canonical_address",
    "canonical_public_key",
    "ethereum_address",
    "is_address",
    "is_public_key",
    "keccak256",
    "to_checksum_address",
]

_COMPRESSED_LEN = 33
_UNCOMPRESSED_LEN = 65
_ADDRESS = re.compile(r"0[xX]([0-9a-fA-F]{40})")


class InvalidPublicKey(ValueError):
    """The text is not a valid secp256k1 public key in hex."""


class InvalidAddress(ValueError):
    """The text is not a valid (EIP-55 consistent) Ethereum address."""


def keccak256(data: bytes) -> bytes:
    """Return the Keccak-256 digest (Ethereum's hash, not NIST SHA3-256) of ``data``."""
    return keccak.new(digest_bits=256, data=data).digest()


def _parse_public_key(text: object) -> PublicKey:
    if not isinstance(text, str):
        raise InvalidPublicKey(f"public key must be a hex string, not {type(text).__name__}")
    return _parse_hex_key(text)


@lru_cache(maxsize=4096)
def _parse_hex_key(text: str) -> PublicKey:
    """Parse a key's hex (cached: a sign-in parses the same key several times, a point costs ~50 µs)."""
    raw = decode_hex(text)
    if raw is None:
        raise InvalidPublicKey("public key is not valid hex")
    if len(raw) == _COMPRESSED_LEN:
        if raw[0] not in (2, 3):
            raise InvalidPublicKey("compressed public key must start with 02 or 03")
    elif len(raw) == _UNCOMPRESSED_LEN:
        # libsecp256k1 also parses "hybrid" 06/07 keys; they are not a form we accept.
        if raw[0] != 4:
            raise InvalidPublicKey("uncompressed public key must start with 04")
    else:
        raise InvalidPublicKey(f"public key has the wrong length: {len(raw)} bytes; expected 33 or 65")
    try:
        return PublicKey(raw)
    except ValueError:
        raise InvalidPublicKey("public key is not a point on the secp256k1 curve") from None


def canonical_public_key(text: str) -> str:
    """Return ``text`` as a compressed, lowercase, unprefixed hex public key.

    Accepts a 33-byte compressed or 65-byte uncompressed secp256k1 point in hex, with optional
    ``0x`` prefix, in any case. Raises :class:`InvalidPublicKey` for anything else (including
    non-str input and points not on the curve).
    """
    return _parse_public_key(text).format(compressed=True).hex()


def is_public_key(text: object) -> bool:
    """Return whether ``text`` is accepted by :func:`canonical_public_key`."""
    try:
        _parse_public_key(text)
    except InvalidPublicKey:
        return False
    return True


def to_checksum_address(address: str) -> str:
    """Return the EIP-55 mixed-case form of ``address`` (validated like :func:`canonical_address`)."""
    hex_digits = canonical_address(address)[2:]
    return _checksum(hex_digits)


def _checksum(lower_hex: str) -> str:
    digest = keccak256(lower_hex.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(h, 16) >= 8 else c
        for c, h in zip(lower_hex, digest[:40], strict=True)
    )


def ethereum_address(pubkey: str) -> str:
    """Return the EIP-55 checksummed Ethereum address (``0x…``) of a public key.

    The address is the last 20 bytes of keccak256 of the 64-byte uncompressed point (without the
    ``04`` prefix). ``pubkey`` may be in any form :func:`canonical_public_key` accepts; raises
    :class:`InvalidPublicKey` otherwise.
    """
    point = _parse_public_key(pubkey).format(compressed=False)[1:]
    return _checksum(keccak256(point)[-20:].hex())


def canonical_address(text: str) -> str:
    """Return an Ethereum address as ``0x`` plus 40 lowercase hex digits.

    Accepts ``0x`` followed by 40 hex digits. All-lowercase and all-uppercase digits are taken as
    is; a mixed-case address must carry a correct EIP-55 checksum. Raises :class:`InvalidAddress`.
    """
    if not isinstance(text, str):
        raise InvalidAddress(f"address must be a string, not {type(text).__name__}")
    match = _ADDRESS.fullmatch(text)
    if match is None:
        raise InvalidAddress("address must be 0x followed by 40 hex digits")
    digits = match.group(1)
    lower = digits.lower()
    if digits not in (lower, digits.upper()) and _checksum(lower)[2:] != digits:
        raise InvalidAddress("address has an invalid EIP-55 checksum")
    return "0x" + lower


def is_address(text: object) -> bool:
    """Return whether ``text`` is accepted by :func:`canonical_address`."""
    try:
        canonical_address(text)  # type: ignore[arg-type]
    except InvalidAddress:
        return False
    return True
