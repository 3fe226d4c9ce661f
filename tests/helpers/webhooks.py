"""Signing webhook bodies exactly as the providers document it, and sample events."""

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import orjson


def stripe_signature(body: bytes, secret: str, *, timestamp: int | None = None, extra_v1: tuple = ()) -> str:
    """`Stripe-Signature`: `t=<ts>,v1=<hex hmac_sha256(secret, f"{t}.{body}")>` (+ further v1 values)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return ",".join([f"t={timestamp}", *(f"v1={value}" for value in extra_v1), f"v1={mac}"])


def idenfy_signature(body: bytes, secret: str) -> str:
    """`Idenfy-Signature`: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def stripe_event(
    event_type: str = "payment_intent.succeeded", obj: dict | None = None, **fields: Any
) -> dict:
    """A Stripe event as Stripe sends it (only the fields we read, plus a few others)."""
    event_id = fields.pop("id", f"evt_{uuid.uuid4().hex[:24]}")
    if obj is None:
        obj = payment_intent()
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": fields.pop("created", int(time.time())),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
        **fields,
    }


def payment_intent(pi_id: str | None = None, **fields: Any) -> dict:
    """A PaymentIntent object."""
    return {
        "id": pi_id or f"pi_{uuid.uuid4().hex[:24]}",
        "object": "payment_intent",
        "amount": 2000,
        "amount_received": 2000,
        "currency": "eur",
        "status": "succeeded",
        "customer": "cus_123",
        "description": "Membership",
        "metadata": {"order": "42"},
        "latest_charge": "ch_1",
        "payment_method": "pm_1",
        "created": 1_700_000_000,
        "livemode": False,
        "last_payment_error": None,
        "unlisted_field": {"kept": "only in the raw body"},
        **fields,
    }


def idenfy_result(client_id: str = "client-1", scan_ref: str | None = None, **overrides: Any) -> dict:
    """An iDenfy verification result callback (an approval unless told otherwise)."""
    status = {
        "overall": "APPROVED",
        "suspicionReasons": [],
        "mismatchTags": [],
        "fraudTags": [],
        "autoDocument": "DOC_VALIDATED",
        "autoFace": "FACE_MATCH",
        "manualDocument": "DOC_VALIDATED",
        "manualFace": "FACE_MATCH",
        "additionalSteps": None,
    }
    status.update(overrides.pop("status", {}))
    return {
        "final": True,
        "platform": "PC",
        "status": status,
        "data": {
            "docFirstName": "JOHN",
            "docLastName": "DOE",
            "docNumber": "XX0000000",
            "docPersonalCode": None,
            "docExpiry": "2030-01-01",
            "docDob": "1990-01-01",
            "docType": "PASSPORT",
            "docSex": "MALE",
            "docNationality": "LT",
            "docIssuingCountry": "LT",
            "selectedCountry": "LT",
        },
        "fileUrls": {},
        "scanRef": scan_ref or uuid.uuid4().hex,
        "clientId": client_id,
        "startTime": 1_700_000_000,
        "finishTime": 1_700_000_100,
        "clientIp": "192.0.2.1",
        **overrides,
    }


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 30) -> tuple[int, dict]:
    """POST `body`; (status, JSON answer) whatever the status, (0, {"error"}) when nothing answered."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **headers}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except OSError as error:  # refused, reset, timed out: the server is down or restarting
        return 0, {"error": repr(error)}
