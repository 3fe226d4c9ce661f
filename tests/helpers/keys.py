"""Test keys and signing exactly as clients do it (eth_account's personal_sign)."""

import hashlib
from dataclasses import dataclass

import coincurve
from eth_account import Account
from eth_account.messages import encode_defunct


@dataclass(frozen=True)
class WalletKey:
    """A secp256k1 key pair for tests, with the signing a wallet would do."""

    private_hex: str

    @classmethod
    def named(cls, name: str) -> "WalletKey":
        """A deterministic key derived from `name`, so failures are reproducible."""
        return cls(hashlib.sha256(name.encode()).hexdigest())

    @property
    def pubkey(self) -> str:
        """Compressed lowercase hex: the canonical form."""
        return coincurve.PrivateKey.from_hex(self.private_hex).public_key.format(compressed=True).hex()

    @property
    def pubkey_uncompressed(self) -> str:
        return coincurve.PrivateKey.from_hex(self.private_hex).public_key.format(compressed=False).hex()

    @property
    def address(self) -> str:
        return Account.from_key(self.private_hex).address

    def sign(self, text: str) -> str:
        """EIP-191 personal_sign of `text`, 65 bytes r||s||v (v 27/28) in hex, as wallets answer."""
        return Account.sign_message(encode_defunct(text=text), self.private_hex).signature.hex()
