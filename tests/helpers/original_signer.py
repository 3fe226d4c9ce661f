"""Signing a nonce the way the original server's clients did: by hand, with no wallet library."""

import coincurve
from Crypto.Hash import keccak


def original_signature(private_hex: str, text: str, *, v_base: int = 27) -> str:
    """keccak256(b"\\x19Ethereum Signed Message:\\n" + len + text), signed recoverably: r||s||v hex.

    `v_base` 27 gives v in {27, 28} (what wallets send), 0 gives the raw recovery id {0, 1}.
    """
    data = text.encode()
    digest = keccak.new(
        digest_bits=256, data=b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data
    )
    raw = coincurve.PrivateKey.from_hex(private_hex).sign_recoverable(digest.digest(), hasher=None)
    return (raw[:64] + bytes([raw[64] + v_base])).hex()
