"""Who a membership call names: a public key or an Ethereum address, in canonical form (pure logic)."""

from dataclasses import dataclass
from functools import lru_cache

from auth_secp import (
    InvalidAddress,
    InvalidPublicKey,
    canonical_address,
    canonical_public_key,
    ethereum_address,
    is_address,
    to_checksum_address,
)


@lru_cache(maxsize=4096)
def address_of(pubkey: str) -> str:
    """The lowercase `0x…` Ethereum address of a public key (any accepted form); cached."""
    return ethereum_address(pubkey).lower()


@dataclass(frozen=True, slots=True)
class Subject:
    """A key named in a membership call: its address always, its canonical public key when given."""

    address: str  # lowercase 0x + 40 hex
    pubkey: str | None

    @property
    def stored(self) -> str:
        """How records name it: the public key, else the lowercase address (as `Member.address`)."""
        return self.pubkey or self.address

    @property
    def shown(self) -> str:
        """How messages name it: the public key, else the checksummed address."""
        return self.pubkey or to_checksum_address(self.address)


def parse_subject(text: object) -> Subject:
    """A public key (hex, compressed or not, 0x optional) or an Ethereum address; ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"expected a public key or an Ethereum address, not {type(text).__name__}")
    if is_address(text):
        return Subject(canonical_address(text), None)
    try:
        pubkey = canonical_public_key(text)
    except InvalidPublicKey:
        try:
            canonical_address(text)
        except InvalidAddress as exc:
            if text.startswith("0x") and len(text) == 42:
                raise ValueError(str(exc)) from exc
        raise ValueError("not a secp256k1 public key in hex nor an Ethereum address") from None
    return Subject(address_of(pubkey), pubkey)
