"""Keys and signing of `circles_client`: what wallets produce, and a key that never shows itself."""

import os
import pickle
import stat

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given, settings
from hypothesis import strategies as st

from auth_secp import verify_signature
from circles_client import InvalidKey, SigningKey, load_key, read_key_file, write_key_file
from tests.helpers.keys import WalletKey

WALLET = WalletKey.named("client-unit")


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300))
def test_signature_is_byte_for_byte_what_eth_account_makes(text: str) -> None:
    key = SigningKey.from_hex(WALLET.private_hex)
    assert key.sign(text) == WALLET.sign(text)


def test_the_server_accepts_the_signature_for_key_and_address() -> None:
    key = SigningKey.generate()
    text = "localhost asks you to sign in to circle 02ab\nPublic key: x\nNonce: 1"
    assert verify_signature(key.pubkey, text, key.sign(text))
    recovered = Account.recover_message(encode_defunct(text=text), signature=bytes.fromhex(key.sign(text)))
    assert recovered == key.address


def test_public_key_and_checksummed_address() -> None:
    key = SigningKey.from_hex("0x" + WALLET.private_hex.upper())
    assert key.pubkey == WALLET.pubkey
    assert key.address == WALLET.address  # EIP-55 mixed case, as eth_account spells it


def test_repr_str_and_pickle_never_show_the_private_key() -> None:
    key = SigningKey.from_hex(WALLET.private_hex)
    for shown in (repr(key), str(key), f"{key}", repr([key])):
        assert WALLET.private_hex not in shown and WALLET.pubkey in shown and "***" in shown
    with pytest.raises(TypeError):
        pickle.dumps(key)


@pytest.mark.parametrize("text", ["", "abc", "zz" * 32, "00" * 32, "ff" * 32, "12" * 33])
def test_bad_keys_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(InvalidKey) as refused:
        SigningKey.from_hex(text)
    assert not text or text not in str(refused.value)


def test_load_key_order_flag_file_env_env_file(tmp_path) -> None:
    first, second, third = (SigningKey.generate() for _ in range(3))
    path = write_key_file(second, tmp_path / "key")
    env_path = write_key_file(third, tmp_path / "env-key")
    environ = {"CIRCLES_KEY": first.private_hex(), "CIRCLES_KEY_FILE": str(env_path)}
    assert load_key(third.private_hex(), file=path, environ=environ).pubkey == third.pubkey
    assert load_key(file=path, environ=environ).pubkey == second.pubkey
    assert load_key(environ=environ).pubkey == first.pubkey
    assert load_key(environ={"CIRCLES_KEY_FILE": str(env_path)}).pubkey == third.pubkey
    assert load_key(environ={}) is None


def test_key_file_is_private_and_not_overwritten(tmp_path) -> None:
    key = SigningKey.generate()
    path = write_key_file(key, tmp_path / "key")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read_key_file(path).pubkey == key.pubkey
    with pytest.raises(FileExistsError):
        write_key_file(SigningKey.generate(), path)
    write_key_file(SigningKey.generate(), path, overwrite=True)
    assert read_key_file(path).pubkey != key.pubkey


def test_unreadable_or_bad_key_files_say_which(tmp_path) -> None:
    with pytest.raises(InvalidKey, match="cannot read key file"):
        read_key_file(tmp_path / "missing")
    (tmp_path / "bad").write_text("secret-but-not-hex")
    with pytest.raises(InvalidKey, match="key file") as bad:
        read_key_file(tmp_path / "bad")
    assert "secret-but-not-hex" not in str(bad.value)
    with pytest.raises(InvalidKey, match=r"\$CIRCLES_KEY"):
        load_key(environ={"CIRCLES_KEY": "nope"})
