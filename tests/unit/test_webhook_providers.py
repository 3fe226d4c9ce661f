"""Provider verification and parsing, with signatures made exactly as Stripe and iDenfy document them."""

import time

import pytest

from tests.helpers.webhooks import (
    dumps,
    idenfy_result,
    idenfy_signature,
    payment_intent,
    stripe_event,
    stripe_signature,
)
from webhooks.providers import InvalidSignature, MalformedEvent, get_provider, registry

SECRET = "whsec_unit_secret"
stripe = get_provider("stripe")
idenfy = get_provider("idenfy")


def stripe_verify(body: bytes, header: str | None, secret: str = SECRET) -> None:
    stripe.verify(body, {} if header is None else {"stripe-signature": header}, secret)


def test_registry_names_both_providers() -> None:
    assert set(registry()) == {"stripe", "idenfy"}
    assert get_provider("paypal") is None


# --- Stripe-Signature ----------------------------------------------------------------------------


def test_stripe_good_signature() -> None:
    body = dumps(stripe_event())
    stripe_verify(body, stripe_signature(body, SECRET))


def test_stripe_tampered_body() -> None:
    body = dumps(stripe_event())
    header = stripe_signature(body, SECRET)
    with pytest.raises(InvalidSignature):
        stripe_verify(body.replace(b"2000", b"2001"), header)


def test_stripe_wrong_secret() -> None:
    body = dumps(stripe_event())
    with pytest.raises(InvalidSignature):
        stripe_verify(body, stripe_signature(body, "whsec_other"))


def test_stripe_old_timestamp() -> None:
    body = dumps(stripe_event())
    with pytest.raises(InvalidSignature):
        stripe_verify(body, stripe_signature(body, SECRET, timestamp=int(time.time()) - 301))
    stripe_verify(body, stripe_signature(body, SECRET, timestamp=int(time.time()) - 290))


def test_stripe_any_of_several_v1_values_matches() -> None:
    body = dumps(stripe_event())
    stripe_verify(body, stripe_signature(body, SECRET, extra_v1=("00" * 32, "ab" * 32)))


def test_stripe_v0_only_is_refused() -> None:
    body = dumps(stripe_event())
    good = stripe_signature(body, SECRET).replace("v1=", "v0=")
    with pytest.raises(InvalidSignature):
        stripe_verify(body, good)


@pytest.mark.parametrize("header", [None, "", "garbage", "t=abc,v1=00", "v1=00", "t=,v1=", ",,,", "t=1=2,v1"])
def test_stripe_missing_or_malformed_header(header: str | None) -> None:
    with pytest.raises(InvalidSignature):
        stripe_verify(b"{}", header)


def test_stripe_non_utf8_body_is_refused_not_crashed() -> None:
    body = b"\xff\xfe{}"
    with pytest.raises(InvalidSignature):
        stripe_verify(body, "t=1,v1=00")


# --- Idenfy-Signature ----------------------------------------------------------------------------


def test_idenfy_good_signature_any_case() -> None:
    body = dumps(idenfy_result())
    idenfy.verify(body, {"idenfy-signature": idenfy_signature(body, SECRET)}, SECRET)
    idenfy.verify(body, {"idenfy-signature": idenfy_signature(body, SECRET).upper()}, SECRET)


@pytest.mark.parametrize(
    "case", ["tampered", "wrong secret", "missing", "empty", "not hex", "truncated", "non-ascii"]
)
def test_idenfy_bad_signatures(case: str) -> None:
    body = dumps(idenfy_result())
    good = idenfy_signature(body, SECRET)
    headers, payload = {"idenfy-signature": good}, body
    if case == "tampered":
        payload = body.replace(b"APPROVED", b"DENIED")
    elif case == "wrong secret":
        headers["idenfy-signature"] = idenfy_signature(body, "other")
    elif case == "missing":
        headers = {}
    elif case == "empty":
        headers["idenfy-signature"] = ""
    elif case == "not hex":
        headers["idenfy-signature"] = "zz" * 32
    elif case == "truncated":
        headers["idenfy-signature"] = good[:-2]
    elif case == "non-ascii":
        headers["idenfy-signature"] = "é" * 64
    with pytest.raises(InvalidSignature):
        idenfy.verify(payload, headers, SECRET)


# --- parsing -------------------------------------------------------------------------------------


def test_stripe_payment_intent_is_typed() -> None:
    event = stripe_event("payment_intent.succeeded", payment_intent("pi_1"), id="evt_1")
    parsed = stripe.parse(dumps(event))
    assert (parsed.event_id, parsed.event_type) == ("evt_1", "payment_intent.succeeded")
    obj = parsed.payload["data"]["object"]
    assert obj["id"] == "pi_1" and obj["amount"] == 2000 and obj["metadata"] == {"order": "42"}
    assert "unlisted_field" not in obj and obj["receipt_email"] is None


def test_stripe_payment_failed_carries_the_error() -> None:
    failure = {"type": "card_error", "code": "card_declined", "decline_code": "generic", "message": "no"}
    pi = payment_intent("pi_2", status="requires_payment_method", last_payment_error=failure)
    obj = stripe.parse(dumps(stripe_event("payment_intent.payment_failed", pi))).payload["data"]["object"]
    assert obj["last_payment_error"] == failure


def test_stripe_checkout_session_and_charge_are_typed() -> None:
    session = {"id": "cs_1", "payment_status": "paid", "amount_total": 500, "currency": "usd",
               "payment_intent": "pi_3", "customer_details": {"email": "a@b.c", "name": "A"}}  # fmt: skip
    obj = stripe.parse(dumps(stripe_event("checkout.session.completed", session))).payload["data"]["object"]
    assert obj["payment_intent"] == "pi_3" and obj["customer_details"]["email"] == "a@b.c"
    charge = {"id": "ch_1", "amount": 500, "amount_refunded": 500, "currency": "usd", "refunded": True}
    obj = stripe.parse(dumps(stripe_event("charge.refunded", charge))).payload["data"]["object"]
    assert obj["refunded"] is True and obj["payment_intent"] is None


def test_stripe_other_types_pass_through_as_they_are() -> None:
    event = stripe_event("customer.created", {"id": "cus_1", "anything": [1, 2]})
    parsed = stripe.parse(dumps(event))
    assert parsed.payload == event and parsed.event_type == "customer.created"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"type": "x", "data": {"object": {}}}',
        b'{"id": "evt", "data": {"object": {}}}',
        b'{"id": "evt", "type": "x", "data": []}',
        dumps(stripe_event("payment_intent.succeeded", {"id": "pi", "amount": "lots"})),
    ],
)
def test_stripe_malformed_events(body: bytes) -> None:
    with pytest.raises(MalformedEvent):
        stripe.parse(body)


def test_idenfy_result_is_typed_with_a_body_derived_id() -> None:
    result = idenfy_result("client-7", "scan-1")
    parsed = idenfy.parse(dumps(result))
    assert parsed.event_type == "verification.APPROVED"
    assert parsed.payload["clientId"] == "client-7" and parsed.payload["status"]["autoFace"] == "FACE_MATCH"
    assert parsed.payload["data"]["docNationality"] == "LT" and "clientIp" not in parsed.payload
    assert parsed.event_id.startswith("scan-1:")
    assert idenfy.parse(dumps(result)).event_id == parsed.event_id  # exact redelivery: same id
    later = idenfy_result("client-7", "scan-1", status={"overall": "DENIED", "manualFace": "FACE_MISMATCH"})
    assert idenfy.parse(dumps(later)).event_id != parsed.event_id  # a later status: a new event


@pytest.mark.parametrize(
    "body", [b"nope", b"[]", b'{"clientId": "c"}', dumps({**idenfy_result(), "status": {"overall": None}})]
)
def test_idenfy_malformed_results(body: bytes) -> None:
    with pytest.raises(MalformedEvent):
        idenfy.parse(body)
