"""EIP-191 `personal_sign` with coincurve and pycryptodome's keccak: what the server verifies.

The digest is keccak256("\\x19Ethereum Signed Message:\\n" + len(data) + data) with `data` the
UTF-8 text; the signature is 65 bytes r‖s‖v with v 27/28, as wallets produce (low-s, since
libsecp256k1 only makes those).
"""

import coincurve
from Crypto.Hash import keccak


def keccak256(data: bytes) -> bytes:
    """The Keccak-256 digest (Ethereum's, not SHA3-256)."""
    return keccak.new(data=data, digest_bits=256).digest()


def personal_message_digest(text: str) -> bytes:
    """The EIP-191 version 0x45 digest of `text`."""
    data = text.encode()
    return keccak256(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)


def personal_sign(private_key: coincurve.PrivateKey, text: str) -> str:
    """Sign `text` as `personal_sign` does: 130 hex digits r‖s‖v, v 27 or 28, no 0x."""
    signature = private_key.sign_recoverable(personal_message_digest(text), hasher=None)
    return (signature[:64] + bytes([signature[64] + 27])).hex()


def checksum_address(lower_hex: str) -> str:
    """The EIP-55 mixed-case form of a 40-hex-digit address (given without 0x)."""
    lower_hex = lower_hex.lower()
    digest = keccak256(lower_hex.encode()).hex()
    return "0x" + "".join(
        char.upper() if char.isalpha() and int(nibble, 16) >= 8 else char
        for char, nibble in zip(lower_hex, digest, strict=False)
    )


def ethereum_address(public_key: coincurve.PublicKey) -> str:
    """The checksummed Ethereum address of a public key."""
    return checksum_address(keccak256(public_key.format(compressed=False)[1:])[-20:].hex())
