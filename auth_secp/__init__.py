"""secp256k1 sign-in for Circles: key/address canonicalisation, EIP-191 signatures, nonce challenges.

Pure Python (coincurve + pycryptodome), no Django. A connection keeps a :class:`ChallengeBook`,
issues a :class:`Challenge` whose ``text`` the client signs with ``personal_sign``, and redeems
the signature for the client's canonical (compressed, lowercase hex) public key.
"""

from auth_secp.challenge import (
    DEFAULT_TTL_SECONDS,
    NONCE_BITS,
    Challenge,
    ChallengeBook,
    InvalidCredentials,
    canonical_subject,
)
from auth_secp.keys import (
    InvalidAddress,
    InvalidPublicKey,
    canonical_address,
    canonical_public_key,
    ethereum_address,
    is_address,
    is_public_key,
    keccak256,
    to_checksum_address,
)
from auth_secp.signatures import SECP256K1_N, eip191_hash, recover_public_key, verify_signature
from auth_secp.tickets import Ticket, nonce_id, redeem_ticket

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "NONCE_BITS",
    "SECP256K1_N",
    "Challenge",
    "ChallengeBook",
    "InvalidAddress",
    "InvalidCredentials",
    "InvalidPublicKey",
    "Ticket",
    "canonical_address",
    "canonical_public_key",
    "canonical_subject",
    "eip191_hash",
    "ethereum_address",
    "is_address",
    "is_public_key",
    "keccak256",
    "nonce_id",
    "recover_public_key",
    "redeem_ticket",
    "to_checksum_address",
    "verify_signature",
]
