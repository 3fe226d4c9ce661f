"""Unit tests for auth_secp: keys, addresses, EIP-191 signatures and nonce challenges."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from coincurve import PrivateKey, PublicKey
from coincurve.ecdsa import der_to_cdata, serialize_compact
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_defunct
from hypothesis import given, settings
from hypothesis import strategies as st

from auth_secp import (
    SECP256K1_N,
    Challenge,
    ChallengeBook,
    InvalidAddress,
    InvalidCredentials,
    InvalidPublicKey,
    canonical_address,
    canonical_public_key,
    canonical_subject,
    eip191_hash,
    ethereum_address,
    is_address,
    is_public_key,
    keccak256,
    recover_public_key,
    to_checksum_address,
    verify_signature,
)

HALF_N = SECP256K1_N // 2
# Private key 1: the public key is the generator G, the address a widely published vector.
G_COMPRESSED = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
G_UNCOMPRESSED = (
    "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
)
KEY1_ADDRESS = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"

PRIVATE_KEYS = [
    1,
    2,
    0xDEADBEEF,
    SECP256K1_N - 1,
    0x4C0883A69102937D6231471B5DBB6204FE5129617082792AE468D01A3F362318,
]
MESSAGES = [
    "hello",
    "",
    "Grüße aus Köln — 日本語のテキスト 🔑",
    "multi\nline\r\nmessage with \x00 null",
    "x" * 1000,
]

private_keys = st.integers(min_value=1, max_value=SECP256K1_N - 1)
messages = st.one_of(st.text(), st.binary())


def priv(k: int) -> PrivateKey:
    return PrivateKey(k.to_bytes(32, "big"))


def pub(k: int) -> str:
    return priv(k).public_key.format().hex()


def sign65(k: int, message: str | bytes, v_offset: int = 27) -> str:
    """r‖s‖v with v = recid + v_offset, signed by coincurve."""
    sig = priv(k).sign_recoverable(eip191_hash(message), hasher=None)
    return (sig[:64] + bytes([sig[64] + v_offset])).hex()


def sign64(k: int, message: str | bytes) -> str:
    der = priv(k).sign(eip191_hash(message), hasher=None)
    return serialize_compact(der_to_cdata(der)).hex()


def eth_sign(k: int, message: str) -> str:
    signed = Account.sign_message(encode_defunct(text=message), k.to_bytes(32, "big"))
    return signed.signature.hex()


def with_s(signature: str, s: int, v: int | None = None) -> str:
    raw = bytearray(bytes.fromhex(signature.removeprefix("0x")))
    raw[32:64] = s.to_bytes(32, "big")
    if v is not None:
        raw[64] = v
    return raw.hex()


def with_r(signature: str, r: int) -> str:
    raw = bytearray(bytes.fromhex(signature))
    raw[:32] = r.to_bytes(32, "big")
    return raw.hex()


# --- keys -----------------------------------------------------------------------------------


def test_generator_vector() -> None:
    assert pub(1) == G_COMPRESSED
    assert canonical_public_key(G_UNCOMPRESSED) == G_COMPRESSED


@pytest.mark.parametrize("k", PRIVATE_KEYS)
def test_public_key_forms_normalise_to_compressed_lowercase(k: int) -> None:
    key = priv(k).public_key
    compressed, uncompressed = key.format(True).hex(), key.format(False).hex()
    forms = [
        compressed,
        uncompressed,
        "0x" + compressed,
        "0x" + uncompressed,
        compressed.upper(),
        "0x" + uncompressed.upper(),
        "0X" + compressed.upper(),
    ]
    assert {canonical_public_key(form) for form in forms} == {compressed}
    assert re.fullmatch(r"0[23][0-9a-f]{64}", compressed)
    assert all(is_public_key(form) for form in forms)


OFF_CURVE_X5 = "02" + (5).to_bytes(32, "big").hex()  # 5^3 + 7 is not a square mod p


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "length"),
        ("0x", "length"),
        ("zz" + G_COMPRESSED[2:], "hex"),
        (G_COMPRESSED + "0", "hex"),  # odd number of digits
        (G_COMPRESSED[:-2], "length"),
        (G_COMPRESSED + "00", "length"),
        (" " + G_COMPRESSED, "hex"),
        (G_COMPRESSED + "\n", "hex"),
        ("02 " + G_COMPRESSED[2:], "hex"),
        ("0x0x" + G_COMPRESSED, "hex"),
        (G_COMPRESSED[:10] + "_" + G_COMPRESSED[11:], "hex"),
        (OFF_CURVE_X5, "curve"),
        ("02" + "ff" * 32, "curve"),  # x >= p
        (G_UNCOMPRESSED[:-1] + "9", "curve"),  # y changed
        ("05" + G_UNCOMPRESSED[2:], "04"),
        ("06" + G_UNCOMPRESSED[2:], "04"),  # hybrid encoding, which libsecp256k1 itself would accept
        ("07" + G_UNCOMPRESSED[2:], "04"),
        ("04" + G_COMPRESSED[2:], "02 or 03"),
        ("00" + G_COMPRESSED[2:], "02 or 03"),
        ("02" + G_UNCOMPRESSED[2:], "04"),
    ],
)
def test_invalid_public_keys_rejected(text: str, why: str) -> None:
    with pytest.raises(InvalidPublicKey, match=why):
        canonical_public_key(text)
    assert not is_public_key(text)


@pytest.mark.parametrize("value", [None, 5, bytes.fromhex(G_COMPRESSED), ["02"]])
def test_non_str_public_key_rejected(value: object) -> None:
    with pytest.raises(InvalidPublicKey, match="hex string"):
        canonical_public_key(value)  # type: ignore[arg-type]
    assert not is_public_key(value)
    assert issubclass(InvalidPublicKey, ValueError)


# --- addresses ------------------------------------------------------------------------------


def test_keccak_vector() -> None:
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_address_vector() -> None:
    assert ethereum_address(G_COMPRESSED) == KEY1_ADDRESS
    assert ethereum_address("0x" + G_UNCOMPRESSED.upper()) == KEY1_ADDRESS


@pytest.mark.parametrize("k", PRIVATE_KEYS)
def test_address_matches_eth_account(k: int) -> None:
    expected = Account.from_key(k.to_bytes(32, "big")).address
    assert ethereum_address(pub(k)) == expected
    assert ethereum_address(priv(k).public_key.format(False).hex()) == expected
    assert to_checksum_address(expected.lower()) == expected


@settings(max_examples=50)
@given(private_keys)
def test_address_matches_eth_account_random(k: int) -> None:
    assert ethereum_address(pub(k)) == Account.from_key(k.to_bytes(32, "big")).address


def test_ethereum_address_rejects_invalid_key() -> None:
    with pytest.raises(InvalidPublicKey):
        ethereum_address(OFF_CURVE_X5)


def test_canonical_address_accepts_all_case_forms() -> None:
    lower = KEY1_ADDRESS.lower()
    forms = [KEY1_ADDRESS, lower, "0x" + lower[2:].upper(), "0X" + lower[2:]]
    assert {canonical_address(form) for form in forms} == {lower}
    assert all(is_address(form) for form in forms)


def _break_checksum(address: str) -> str:
    """Swap the case of the first letter digit, keeping the address mixed-case."""
    digits = address[2:]
    i = next(i for i, c in enumerate(digits) if c.isalpha())
    return "0x" + digits[:i] + digits[i].swapcase() + digits[i + 1 :]


@pytest.mark.parametrize("k", PRIVATE_KEYS)
def test_wrong_eip55_checksum_rejected(k: int) -> None:
    address = ethereum_address(pub(k))
    broken = _break_checksum(address)
    assert broken.lower() == address.lower()
    assert broken != address
    assert canonical_address(address) == address.lower()
    assert broken[2:] not in (broken[2:].lower(), broken[2:].upper()), "pick a key with a mixed-case address"
    with pytest.raises(InvalidAddress, match="checksum"):
        canonical_address(broken)
    assert not is_address(broken)


@pytest.mark.parametrize(
    "text",
    [
        KEY1_ADDRESS[2:],  # no 0x
        KEY1_ADDRESS[:-1],
        KEY1_ADDRESS + "0",
        KEY1_ADDRESS[:-1] + "g",
        KEY1_ADDRESS + "\n",
        "",
        G_COMPRESSED,
    ],
)
def test_malformed_address_rejected(text: str) -> None:
    with pytest.raises(InvalidAddress):
        canonical_address(text)
    assert not is_address(text)


def test_non_str_address_rejected() -> None:
    with pytest.raises(InvalidAddress):
        canonical_address(None)  # type: ignore[arg-type]
    assert not is_address(bytes(20))
    assert issubclass(InvalidAddress, ValueError)


# --- EIP-191 hash ---------------------------------------------------------------------------


@pytest.mark.parametrize("message", MESSAGES)
def test_eip191_hash_matches_eth_account(message: str) -> None:
    assert eip191_hash(message) == _hash_eip191_message(encode_defunct(text=message))
    assert eip191_hash(message.encode()) == eip191_hash(message)


def test_eip191_hash_uses_byte_length() -> None:
    text = "é"  # 1 character, 2 bytes
    expected = keccak256(b"\x19Ethereum Signed Message:\n2" + text.encode())
    assert eip191_hash(text) == expected


def test_eip191_hash_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        eip191_hash(123)  # type: ignore[arg-type]


# --- signatures -----------------------------------------------------------------------------


@pytest.mark.parametrize("k", PRIVATE_KEYS)
@pytest.mark.parametrize("message", MESSAGES)
def test_eth_account_signatures_verify_unchanged(k: int, message: str) -> None:
    signature = eth_sign(k, message)
    key = pub(k)
    assert verify_signature(key, message, signature)
    assert verify_signature(priv(k).public_key.format(False).hex(), message, signature)
    assert verify_signature(key, message, "0x" + signature.removeprefix("0x"))
    assert verify_signature(key, message, signature.upper())
    assert recover_public_key(message, signature) == key
    assert not verify_signature(key, message + ".", signature)
    assert not verify_signature(pub(k % (SECP256K1_N - 1) + 1), message, signature)


@pytest.mark.parametrize("k", PRIVATE_KEYS)
def test_v_forms_and_compact(k: int) -> None:
    message = "sign in please"
    key = pub(k)
    sig27 = sign65(k, message, 27)
    sig0 = sign65(k, message, 0)
    assert sig27[:128] == sig0[:128]
    assert int(sig27[128:], 16) in (27, 28)
    assert int(sig0[128:], 16) in (0, 1)
    assert verify_signature(key, message, sig27)
    assert verify_signature(key, message, sig0)
    assert verify_signature(key, message, sig27[:128])  # r‖s only
    assert verify_signature(key, message, sign64(k, message))
    assert recover_public_key(message, sig0) == key
    assert recover_public_key(message, sig27) == key
    assert recover_public_key(message, sig27[:128]) is None  # no recovery id


def test_wrong_recovery_id_fails() -> None:
    message = "sign in please"
    sig = sign65(7, message, 27)
    other_v = 55 - int(sig[128:], 16)  # 27 <-> 28
    flipped = sig[:128] + f"{other_v:02x}"
    assert not verify_signature(pub(7), message, flipped)
    assert recover_public_key(message, flipped) != pub(7)


@pytest.mark.parametrize("k", PRIVATE_KEYS)
def test_wrong_key_and_tampered_message(k: int) -> None:
    message = "Nonce: 1234"
    other = pub(k + 1 if k < SECP256K1_N - 1 else 1)
    for sig in (sign65(k, message), sign64(k, message)):
        assert verify_signature(pub(k), message, sig)
        assert not verify_signature(other, message, sig)
        assert not verify_signature(pub(k), "Nonce: 1235", sig)


@pytest.mark.parametrize("k", PRIVATE_KEYS)
def test_high_s_rejected(k: int) -> None:
    message = "malleable?"
    sig = sign65(k, message)
    s = int(sig[64:128], 16)
    assert 0 < s <= HALF_N  # signers emit low-s
    v = int(sig[128:], 16)
    high = with_s(sig, SECP256K1_N - s, 55 - v)
    # (r, n - s) with the other recovery id is the same key mathematically: only the rule rejects it.
    raw = bytes.fromhex(high)
    same = PublicKey.from_signature_and_message(raw[:64] + bytes([raw[64] - 27]), eip191_hash(message), None)
    assert same.format().hex() == pub(k)
    assert not verify_signature(pub(k), message, high)
    assert recover_public_key(message, high) is None
    assert not verify_signature(pub(k), message, high[:128])


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "0x",
        "zz" * 65,
        "ab" * 64 + "1",  # odd length
        "ab" * 63,
        "ab" * 66,
        "ab" * 130,
        " " + "ab" * 65,
        "ab" * 65 + "\n",
        "0x0x" + "ab" * 64,
        "\u0660" * 130,  # ARABIC-INDIC DIGIT ZERO: a Unicode digit, not hex
    ],
)
def test_malformed_signatures_return_false(signature: str) -> None:
    assert not verify_signature(G_COMPRESSED, "m", signature)
    assert recover_public_key("m", signature) is None


@pytest.mark.parametrize("value", [None, 5, b"\x00" * 65, bytearray(65)])
def test_non_str_signature_returns_false(value: object) -> None:
    assert not verify_signature(G_COMPRESSED, "m", value)  # type: ignore[arg-type]
    assert recover_public_key("m", value) is None  # type: ignore[arg-type]


def test_invalid_pubkey_returns_false() -> None:
    sig = sign65(1, "m")
    assert verify_signature(G_COMPRESSED, "m", sig)
    assert not verify_signature(OFF_CURVE_X5, "m", sig)
    assert not verify_signature("junk", "m", sig)
    assert not verify_signature(None, "m", sig)  # type: ignore[arg-type]


@pytest.mark.parametrize("v", [2, 3, 26, 29, 35, 36, 37, 38, 255])
def test_bad_v_rejected(v: int) -> None:
    sig = sign65(1, "m")
    bad = sig[:128] + f"{v:02x}"
    assert not verify_signature(G_COMPRESSED, "m", bad)
    assert recover_public_key("m", bad) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("r", 0),
        ("r", SECP256K1_N),
        ("r", 2**256 - 1),
        ("s", 0),
        ("s", SECP256K1_N),
        ("s", 2**256 - 1),
        ("s", HALF_N + 1),
    ],
)
def test_r_s_out_of_range_rejected(field: str, value: int) -> None:
    sig = sign65(1, "m")
    bad = with_r(sig, value) if field == "r" else with_s(sig, value)
    for candidate in (bad, bad[:128]):
        assert not verify_signature(G_COMPRESSED, "m", candidate)
    assert recover_public_key("m", bad) is None


@given(k=private_keys, message=messages, v_offset=st.sampled_from([0, 27]), data=st.data())
def test_random_coincurve_signatures(
    k: int, message: str | bytes, v_offset: int, data: st.DataObject
) -> None:
    key = pub(k)
    for sig in (sign65(k, message, v_offset), sign64(k, message)):
        assert verify_signature(key, message, sig)
        raw = bytearray(bytes.fromhex(sig))
        bit = data.draw(st.integers(0, len(raw) * 8 - 1), label="bit")
        raw[bit // 8] ^= 1 << (bit % 8)
        assert not verify_signature(key, message, raw.hex())


@settings(max_examples=25, deadline=None)
@given(k=private_keys, message=st.text(), data=st.data())
def test_random_eth_account_signatures(k: int, message: str, data: st.DataObject) -> None:
    sig = eth_sign(k, message)
    assert verify_signature(pub(k), message, sig)
    assert recover_public_key(message, sig) == pub(k)
    raw = bytearray(bytes.fromhex(sig.removeprefix("0x")))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1), label="bit")
    raw[bit // 8] ^= 1 << (bit % 8)
    assert not verify_signature(pub(k), message, raw.hex())


# --- challenges -----------------------------------------------------------------------------

T0 = datetime(2026, 11, 27, 14, 32, 56, tzinfo=UTC)


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_book(clock: Clock | None = None, **kwargs: object) -> tuple[ChallengeBook, Clock]:
    clock = clock or Clock()
    return ChallengeBook("circles.example.org", "family-circle", clock=clock, **kwargs), clock  # type: ignore[arg-type]


def test_challenge_text_contents() -> None:
    book, _ = make_book()
    challenge = book.issue("0x" + G_UNCOMPRESSED.upper())
    assert challenge.subject == G_COMPRESSED
    assert challenge.issued_at == T0
    assert challenge.expires_at == T0 + timedelta(minutes=5)
    assert re.fullmatch(r"[0-9a-f]{32}", challenge.nonce)  # 128 bits
    assert challenge.text == (
        "circles.example.org asks you to sign in to circle family-circle\n"
        f"Public key: {G_COMPRESSED}\n"
        f"Nonce: {challenge.nonce}\n"
        "Issued At: 2026-11-27T14:32:56Z\n"
        "Expiration Time: 2026-11-27T14:37:56Z"
    )
    assert book.pending is challenge


def test_challenge_times_are_utc_whole_seconds() -> None:
    cet = timezone(timedelta(hours=1))
    book, _ = make_book(Clock(datetime(2026, 11, 27, 15, 32, 56, 999_999, tzinfo=cet)), ttl=60)
    challenge = book.issue(G_COMPRESSED)
    assert challenge.issued_at == T0
    assert challenge.issued_at.tzinfo == UTC
    assert "Issued At: 2026-11-27T14:32:56Z\nExpiration Time: 2026-11-27T14:33:56Z" in challenge.text


def test_nonces_are_unique() -> None:
    book, _ = make_book()
    nonces = {book.issue(G_COMPRESSED).nonce for _ in range(200)}
    assert len(nonces) == 200


def test_challenge_is_frozen() -> None:
    book, _ = make_book()
    challenge = book.issue(G_COMPRESSED)
    with pytest.raises(AttributeError):
        challenge.nonce = "0" * 32  # type: ignore[misc]
    assert isinstance(challenge, Challenge)


@pytest.mark.parametrize("k", [1, 99])
def test_redeem_success_with_eth_account(k: int) -> None:
    book, _ = make_book()
    challenge = book.issue(pub(k))
    assert book.redeem(pub(k), eth_sign(k, challenge.text)) == pub(k)
    assert book.pending is None


def test_redeem_accepts_any_form_of_the_key() -> None:
    book, _ = make_book()
    challenge = book.issue(G_COMPRESSED)
    assert book.redeem("0x" + G_UNCOMPRESSED.upper(), sign64(1, challenge.text)) == G_COMPRESSED


def test_redeem_without_challenge() -> None:
    book, _ = make_book()
    with pytest.raises(InvalidCredentials) as err:
        book.redeem(G_COMPRESSED, sign65(1, "anything"))
    assert err.value.reason == "no challenge"


def test_single_use_replay_fails() -> None:
    book, _ = make_book()
    challenge = book.issue(G_COMPRESSED)
    sig = sign65(1, challenge.text)
    assert book.redeem(G_COMPRESSED, sig) == G_COMPRESSED
    with pytest.raises(InvalidCredentials) as err:
        book.redeem(G_COMPRESSED, sig)
    assert err.value.reason == "no challenge"


def test_failed_attempt_consumes_the_challenge() -> None:
    book, _ = make_book()
    challenge = book.issue(G_COMPRESSED)
    with pytest.raises(InvalidCredentials) as err:
        book.redeem(G_COMPRESSED, sign65(2, challenge.text))
    assert err.value.reason == "bad signature"
    with pytest.raises(InvalidCredentials) as err:
        book.redeem(G_COMPRESSED, sign65(1, challenge.text))  # the right signature, too late
    assert err.value.reason == "no challenge"


def test_junk_signature_is_bad_signature() -> None:
    book, _ = make_book()
    book.issue(G_COMPRESSED)
    with pytest.raises(InvalidCredentials) as err:
        book.redeem(G_COMPRESSED, "not hex at all")
    assert err.value.reason == "bad signature"


def test_second_issue_replaces_first() -> None:
    book, _ = make_book()
    first = book.issue(G_COMPRESSED)
    second = book.issue(G_COMPRESSED)
    assert first.nonce != second.nonce
    assert book.pending is second
    with pytest.raises(InvalidCredentials) as err:
        book.redeem(G_COMPRESSED, sign65(1, first.text))
    assert err.value.reason == "bad signature"

    third = book.issue(G_COMPRESSED)
    assert book.redeem(G_COMPRESSED, sign65(1, third.text)) == G_COMPRESSED


def test_subject_mismatch_keeps_challenge() -> None:
    book, _ = make_book()
    challenge = book.issue(pub(1))
    for wrong in (pub(2), KEY1_ADDRESS, "garbage", OFF_CURVE_X5):
        with pytest.raises(InvalidCredentials) as err:
            book.redeem(wrong, sign65(2, challenge.text))
        assert err.value.reason == "subject mismatch"
    assert book.redeem(pub(1), sign65(1, challenge.text)) == pub(1)


def test_issue_to_other_key_replaces_and_mismatches() -> None:
    book, _ = make_book()
    first = book.issue(pub(1))
    book.issue(pub(2))
    with pytest.raises(InvalidCredentials) as err:
        book.redeem(pub(1), sign65(1, first.text))
    assert err.value.reason == "subject mismatch"


def test_expiry_with_injected_clock() -> None:
    book, clock = make_book()
    challenge = book.issue(G_COMPRESSED)
    clock.advance(299)
    assert book.redeem(G_COMPRESSED, sign65(1, challenge.text)) == G_COMPRESSED

    challenge = book.issue(G_COMPRESSED)
    clock.advance(300)
    with pytest.raises(InvalidCredentials) as err:
        book.redeem(G_COMPRESSED, sign65(1, challenge.text))
    assert err.value.reason == "expired"
    assert book.pending is None  # consumed


def test_custom_ttl_and_explicit_now() -> None:
    book, _ = make_book(ttl=10)
    challenge = book.issue(G_COMPRESSED)
    assert challenge.expires_at - challenge.issued_at == timedelta(seconds=10)
    with pytest.raises(InvalidCredentials) as err:
        book.redeem(G_COMPRESSED, sign65(1, challenge.text), now=T0 + timedelta(seconds=11))
    assert err.value.reason == "expired"
    challenge = book.issue(G_COMPRESSED, now=T0 + timedelta(hours=1))
    assert challenge.issued_at == T0 + timedelta(hours=1)


def test_naive_clock_rejected() -> None:
    book = ChallengeBook("s", "c", clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        book.issue(G_COMPRESSED)


@pytest.mark.parametrize(
    ("server", "circle", "ttl"),
    [("", "c", 300), ("s", "", 300), ("s\nPublic key: x", "c", 300), ("s", "c\r", 300), ("s", "c", 0)],
)
def test_bad_book_parameters(server: str, circle: str, ttl: float) -> None:
    with pytest.raises(ValueError):
        ChallengeBook(server, circle, ttl=ttl)


def test_issue_rejects_bad_subject_and_keeps_previous() -> None:
    book, _ = make_book()
    challenge = book.issue(G_COMPRESSED)
    with pytest.raises(InvalidPublicKey):
        book.issue("nonsense")
    with pytest.raises(InvalidAddress):
        book.issue(_break_checksum(KEY1_ADDRESS))
    assert book.pending is challenge


def test_canonical_subject() -> None:
    assert canonical_subject(G_UNCOMPRESSED) == G_COMPRESSED
    assert canonical_subject(KEY1_ADDRESS) == KEY1_ADDRESS.lower()
    with pytest.raises(ValueError):
        canonical_subject("0x1234")


# --- address sign-in ------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 12345, SECP256K1_N - 1])
def test_address_sign_in(k: int) -> None:
    account = Account.from_key(k.to_bytes(32, "big"))
    book, _ = make_book()
    challenge = book.issue(account.address.lower())
    assert challenge.subject == account.address.lower()
    assert f"\nAddress: {account.address}\n" in challenge.text  # EIP-55 form for humans
    signature = eth_sign(k, challenge.text)
    assert book.redeem(account.address, signature) == pub(k)


def test_address_sign_in_wrong_signer() -> None:
    book, _ = make_book()
    challenge = book.issue(KEY1_ADDRESS)
    with pytest.raises(InvalidCredentials) as err:
        book.redeem(KEY1_ADDRESS, eth_sign(2, challenge.text))
    assert err.value.reason == "bad signature"


def test_address_sign_in_needs_recoverable_signature() -> None:
    book, _ = make_book()
    challenge = book.issue(KEY1_ADDRESS)
    with pytest.raises(InvalidCredentials) as err:
        book.redeem(KEY1_ADDRESS, sign64(1, challenge.text))
    assert err.value.reason == "bad signature"


def test_address_sign_in_rejects_high_s() -> None:
    book, _ = make_book()
    challenge = book.issue(KEY1_ADDRESS)
    sig = sign65(1, challenge.text)
    high = with_s(sig, SECP256K1_N - int(sig[64:128], 16), 55 - int(sig[128:], 16))
    with pytest.raises(InvalidCredentials) as err:
        book.redeem(KEY1_ADDRESS, high)
    assert err.value.reason == "bad signature"


def test_key_subject_and_address_subject_do_not_mix() -> None:
    book, _ = make_book()
    challenge = book.issue(G_COMPRESSED)
    with pytest.raises(InvalidCredentials) as err:
        book.redeem(KEY1_ADDRESS, sign65(1, challenge.text))
    assert err.value.reason == "subject mismatch"
