"""iDenfy: `Idenfy-Signature` is the hex HMAC-SHA256 of the raw body; the body a verification result.

The event id is `<scanRef>:<sha256 of the body, 32 hex>`: an exact redelivery is a duplicate,
while a later callback for the same scan (a manual review after the automatic one, the final
result after a non-final one) is a new event. The type is `verification.<status.overall>`.
"""

import hashlib
import hmac
from collections.abc import Mapping

import orjson

from webhooks.providers import InvalidSignature, MalformedEvent, ParsedEvent, Provider
from webhooks.serializers import IdenfyVerificationSerializer, validated

HEADER = "idenfy-signature"


def sign(body: bytes, secret: str) -> str:
    """The signature iDenfy sends for `body`: hex HMAC-SHA256 keyed with `secret`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, headers: Mapping[str, str], secret: str) -> None:
    """Raise InvalidSignature unless `Idenfy-Signature` is the HMAC of `body` (constant-time compare)."""
    given = (headers.get(HEADER) or "").strip().lower()
    if not given:
        raise InvalidSignature("no Idenfy-Signature header")
    if not secret:
        raise InvalidSignature("no secret configured")
    if not hmac.compare_digest(sign(body, secret).encode(), given.encode("ascii", "replace")):
        raise InvalidSignature("signature mismatch")


def parse(body: bytes) -> ParsedEvent:
    """The verification result as `EVENT` (camelCase keys as iDenfy sends them)."""
    try:
        result = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"not JSON: {exc}") from None
    if not isinstance(result, dict):
        raise MalformedEvent("not a JSON object")
    payload = validated(IdenfyVerificationSerializer, result)
    digest = hashlib.sha256(body).hexdigest()[:32]
    return ParsedEvent(
        event_id=f"{payload['scanRef']}:{digest}",
        event_type=f"verification.{payload['status']['overall']}",
        payload=payload,
    )


PROVIDER = Provider(
    name="idenfy",
    verify=verify,
    parse=parse,
    secret_setting="IDENFY_WEBHOOK_SECRET",
    recorded_headers=(HEADER,),
)
