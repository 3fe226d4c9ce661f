"""EIP-191 (``personal_sign``) message hashing and secp256k1 signature verification.

Accepted signature encodings (hex, optional ``0x``, any case):

* 65 bytes ``r‖s‖v`` with ``v`` in {0, 1, 27, 28} (what ``personal_sign`` and eth_account produce);
* 64 bytes ``r‖s`` (no recovery id; verified against the given public key).

Only low-s signatures (``1 <= s <= n/2``, EIP-2) are accepted, so every signature has exactly
one valid encoding; ``1 <= r < n`` is required. Every signer in common use (libsecp256k1,
eth_account, ethers, MetaMask) emits low-s.
"""

from __future__ import annotations

from coincurve import PublicKey
from coincurve.ecdsa import cdata_to_der, deserialize_compact

from auth_secp._hex import decode_hex
from auth_secp.keys import InvalidPublicKey, _parse_public_key, keccak256

__all__ = ["SECP256K1_N", "eip191_hash", "recover_public_key", "verify_signature"]

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2
_PREFIX = b"\x19Ethereum Signed Message:\n"


def eip191_hash(message: str | bytes) -> bytes:
    """Return the 32-byte EIP-191 version 0x45 digest of ``message``.

    That is keccak256(``"\\x19Ethereum Signed Message:\\n" + len(data) + data``) where ``data`` is the
    message bytes (text is UTF-8 encoded) and ``len`` is the decimal byte length.
    """
    if isinstance(message, str):
        data = message.encode("utf-8")
    elif isinstance(message, bytes | bytearray):
        data = bytes(message)
    else:
        raise TypeError(f"message must be str or bytes, not {type(message).__name__}")
    return keccak256(_PREFIX + str(len(data)).encode("ascii") + data)


def _split(signature: object) -> tuple[bytes, int | None] | None:
    """Return (r‖s, recid or None) for a well-formed low-s signature, else None."""
    raw = decode_hex(signature)
    if raw is None or len(raw) not in (64, 65):
        return None
    r = int.from_bytes(raw[:32], "big")
    s = int.from_bytes(raw[32:64], "big")
    if not (0 < r < SECP256K1_N and 0 < s <= _HALF_N):
        return None
    if len(raw) == 64:
        return raw, None
    v = raw[64]
    if v in (27, 28):
        return raw[:64], v - 27
    if v in (0, 1):
        return raw[:64], v
    return None


def _recover(digest: bytes, rs: bytes, recid: int) -> PublicKey | None:
    try:
        return PublicKey.from_signature_and_message(rs + bytes([recid]), digest, hasher=None)
    except ValueError:  # no point with this r / recovery failed
        return None


def recover_public_key(message: str | bytes, signature: str) -> str | None:
    """Recover the canonical public key that made a 65-byte ``r‖s‖v`` EIP-191 signature of ``message``.

    Returns None for anything that is not a valid 65-byte low-s signature (bad hex, wrong length,
    ``v`` outside {0, 1, 27, 28}, ``r``/``s`` out of range, no recoverable key). Never raises for
    bad ``signature`` input.
    """
    parts = _split(signature)
    if parts is None:
        return None
    rs, recid = parts
    if recid is None:
        return None
    key = _recover(eip191_hash(message), rs, recid)
    return None if key is None else key.format(compressed=True).hex()


def verify_signature(pubkey: str, message: str | bytes, signature: str) -> bool:
    """Return whether ``signature`` is ``pubkey``'s EIP-191 signature of ``message``.

    ``signature`` is 65-byte ``r‖s‖v`` (the key is recovered and compared) or 64-byte ``r‖s``
    (verified against the key) hex. High-s signatures are rejected (see module docstring).
    Returns False, never raises, for any malformed signature and also for an invalid ``pubkey``,
    since both may come straight from a client. ``message`` is server data: a non-str/bytes
    message raises TypeError.
    """
    digest = eip191_hash(message)
    try:
        expected = _parse_public_key(pubkey)
    except InvalidPublicKey:
        return False
    parts = _split(signature)
    if parts is None:
        return False
    rs, recid = parts
    if recid is not None:
        recovered = _recover(digest, rs, recid)
        return recovered is not None and recovered.format() == expected.format()
    try:
        der = cdata_to_der(deserialize_compact(rs))
        return expected.verify(der, digest, hasher=None)
    except ValueError:
        return False
