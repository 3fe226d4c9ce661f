"""HTTP-issued sign-in tickets (auth_secp.tickets): text, nonce parsing, redemption rules."""

import pytest

from auth_secp import InvalidCredentials, Ticket, canonical_public_key, nonce_id, redeem_ticket
from tests.helpers.keys import WalletKey
from tests.helpers.original_signer import original_signature

KEY = WalletKey.named("tickets-unit")
OTHER = WalletKey.named("tickets-other")
CIRCLE = WalletKey.named("tickets-circle").pubkey
NOW = 1_800_000_000


def issue(**bound) -> Ticket:
    return Ticket.issue("circles.test", NOW, 300, **bound)


def test_the_text_binds_what_was_named() -> None:
    bare = issue()
    assert bare.text.splitlines()[0] == "circles.test asks you to sign in"
    assert bare.text.splitlines()[1] == f"Nonce: {bare.nonce}"
    bound = issue(subject=KEY.pubkey, circle=CIRCLE)
    lines = bound.text.splitlines()
    assert lines[0] == f"circles.test asks you to sign in to circle {CIRCLE}"
    assert lines[1] == f"Public key: {KEY.pubkey}"
    assert lines[3:] == ["Issued At: 2027-01-15T08:00:00Z", "Expiration Time: 2027-01-15T08:05:00Z"]
    by_address = issue(subject=KEY.address.lower())
    assert f"Address: {KEY.address}" in by_address.text


def test_a_record_round_trips() -> None:
    bound = issue(subject=KEY.pubkey, circle=CIRCLE)
    assert Ticket.from_record(bound.to_record()) == bound


def test_nonce_id_from_the_id_or_the_text() -> None:
    ticket = issue()
    assert nonce_id(ticket.nonce) == ticket.nonce
    assert nonce_id(ticket.text) == ticket.nonce
    assert nonce_id(ticket.nonce + " ") is None


@pytest.mark.parametrize("sent", [None, 5, "", "zz" * 16, "AB" * 16, "Nonce: 1\nNonce: 2", "ab" * 15])
def test_nonce_id_refuses_anything_else(sent) -> None:
    assert nonce_id(sent) is None


def test_two_nonce_lines_are_refused() -> None:
    a, b = issue(), issue()
    assert nonce_id(a.text + "\n" + b.text) is None


@pytest.mark.parametrize(
    "pubkey",
    [KEY.pubkey, KEY.pubkey_uncompressed, "0x" + KEY.pubkey_uncompressed, "0X" + KEY.pubkey.upper()],
)
@pytest.mark.parametrize("v_base,prefix", [(27, ""), (0, ""), (27, "0x"), (0, "0x")])
def test_every_spelling_of_the_originals_examples_redeems(pubkey: str, v_base: int, prefix: str) -> None:
    ticket = issue(subject=canonical_public_key(pubkey), circle=CIRCLE)
    signature = prefix + original_signature(KEY.private_hex, ticket.text, v_base=v_base)
    assert len(signature.removeprefix("0x")) == 130
    assert redeem_ticket(ticket, ticket.text, pubkey, signature, CIRCLE, NOW + 1) == KEY.pubkey


def test_an_address_subject_recovers_the_key() -> None:
    ticket = issue(subject=KEY.address.lower())
    assert redeem_ticket(ticket, ticket.nonce, KEY.address, KEY.sign(ticket.text), CIRCLE, NOW) == KEY.pubkey


@pytest.mark.parametrize(
    "case,reason",
    [
        ("expired", "expired"),
        ("other key", "subject mismatch"),
        ("other circle", "wrong circle"),
        ("bad signature", "bad signature"),
        ("other text", "bad signature"),
        ("malformed key", "subject mismatch"),
    ],
)
def test_redemption_refusals(case: str, reason: str) -> None:
    ticket = issue(subject=KEY.pubkey, circle=CIRCLE)
    args = {"sent": ticket.text, "subject": KEY.pubkey, "signature": KEY.sign(ticket.text), "circle": CIRCLE}
    now = NOW
    if case == "expired":
        now = ticket.expires_at
    elif case == "other key":
        args["subject"], args["signature"] = OTHER.pubkey, OTHER.sign(ticket.text)
    elif case == "other circle":
        args["circle"] = OTHER.pubkey
    elif case == "bad signature":
        args["signature"] = OTHER.sign(ticket.text)
    elif case == "other text":
        args["sent"] = ticket.text + " "
    elif case == "malformed key":
        args["subject"] = "nope"
    with pytest.raises(InvalidCredentials) as refused:
        redeem_ticket(ticket, args["sent"], args["subject"], args["signature"], args["circle"], now)
    assert refused.value.reason == reason
