"""Stripe: `Stripe-Signature` verified with the official library, events parsed into typed maps.

Verification is `stripe.WebhookSignature.verify_header`, the check `construct_event` makes:
`t=<ts>,v1=<hex>[,v1=<hex>...]`, any matching v1 accepted (secret rotation), v0 ignored,
timestamps older than 300 s refused; we also refuse one more than 300 s in the future (the library
does not: a signed request dated ahead would stay replayable until then). The four event types we
act on are validated by the serializers in `webhooks.serializers`; any other type reaches the
script as Stripe sent it.
"""

import time
from collections.abc import Mapping

import orjson
import stripe

from webhooks.providers import InvalidSignature, MalformedEvent, ParsedEvent, Provider
from webhooks.serializers import STRIPE_OBJECT_SERIALIZERS, validated

TOLERANCE_SECONDS = 300
HEADER = "stripe-signature"


def signed_timestamp(header: str) -> int | None:
    """The `t=` of a `Stripe-Signature` header (None when absent or not a number)."""
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def verify(body: bytes, headers: Mapping[str, str], secret: str) -> None:
    """Raise InvalidSignature unless `Stripe-Signature` signs `body` with `secret` within 300 s either way."""
    header = headers.get(HEADER)
    try:
        stripe.WebhookSignature.verify_header(body, header, secret, TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(str(exc)) from None
    except (UnicodeDecodeError, ValueError) as exc:  # a body that is not UTF-8 cannot be Stripe's
        raise InvalidSignature(f"unverifiable body: {exc}") from None
    timestamp = signed_timestamp(header or "")
    if timestamp is None or timestamp > time.time() + TOLERANCE_SECONDS:
        raise InvalidSignature("timestamp outside the tolerance zone (in the future)")


def parse(body: bytes) -> ParsedEvent:
    """The event's id, type and `EVENT` map (typed `data.object` for the types we know)."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise MalformedEvent("not a JSON object")
    event_id, event_type, data = event.get("id"), event.get("type"), event.get("data")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
        raise MalformedEvent("no event id")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 100:
        raise MalformedEvent("no event type")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise MalformedEvent("no data.object")
    serializer = STRIPE_OBJECT_SERIALIZERS.get(event_type)
    if serializer is not None:
        payload = {
            "id": event_id,
            "type": event_type,
            "created": event.get("created"),
            "livemode": bool(event.get("livemode", False)),
            "api_version": event.get("api_version"),
            "data": {"object": validated(serializer, data["object"])},
        }
    else:
        payload = event
    return ParsedEvent(event_id=event_id, event_type=event_type, payload=payload)


PROVIDER = Provider(
    name="stripe",
    verify=verify,
    parse=parse,
    secret_setting="STRIPE_WEBHOOK_SECRET",
    recorded_headers=(HEADER,),
)
