"""Typed payloads: DRF serializers for the provider objects scripts act on.

Every optional field has a default, so `EVENT` always has the same shape for a given type and
a script can read `EVENT.data.object.customer` without checking the key is there. Unknown
fields are dropped from typed objects (the raw body stays on the WebhookEvent row).
"""

from functools import cache
from typing import Any

import orjson
from rest_framework import serializers

from webhooks.providers import MalformedEvent


def _text() -> serializers.CharField:
    """An optional, nullable string (None when absent)."""
    return serializers.CharField(required=False, allow_null=True, allow_blank=True, default=None)


def _integer() -> serializers.IntegerField:
    return serializers.IntegerField(required=False, allow_null=True, default=None)


def _strings() -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(allow_blank=True), required=False, default=list)


def _metadata() -> serializers.DictField:
    return serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, default=dict)


@cache
def _validator(serializer_class: type[serializers.Serializer]) -> serializers.Serializer:
    # One unbound instance per class: `run_validation` keeps no per-call state on it, and reusing
    # it skips the deep copy of every declared field that each new serializer makes (a third of
    # a verified delivery's cost).
    return serializer_class()


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """`data` validated by `serializer_class`, as plain JSON types; raises MalformedEvent."""
    try:
        value = _validator(serializer_class).run_validation(data)
    except serializers.ValidationError as exc:
        raise MalformedEvent(f"invalid payload: {orjson.dumps(exc.detail).decode()[:500]}") from None
    return orjson.loads(orjson.dumps(value))


# --- Stripe --------------------------------------------------------------------------------------


class StripePaymentErrorSerializer(serializers.Serializer):
    """`last_payment_error` of a PaymentIntent whose payment failed."""

    type = _text()
    code = _text()
    decline_code = _text()
    message = _text()


class StripePaymentIntentSerializer(serializers.Serializer):
    """A PaymentIntent (`payment_intent.succeeded`, `payment_intent.payment_failed`)."""

    id = serializers.CharField(max_length=255)
    object = _text()
    amount = serializers.IntegerField()
    amount_received = _integer()
    currency = serializers.CharField(max_length=10)
    status = serializers.CharField(max_length=40)
    customer = _text()
    description = _text()
    receipt_email = _text()
    payment_method = _text()
    latest_charge = _text()
    created = _integer()
    livemode = serializers.BooleanField(required=False, default=False)
    metadata = _metadata()
    last_payment_error = StripePaymentErrorSerializer(required=False, allow_null=True, default=None)


class StripeCustomerDetailsSerializer(serializers.Serializer):
    """`customer_details` of a Checkout Session."""

    email = _text()
    name = _text()


class StripeCheckoutSessionSerializer(serializers.Serializer):
    """A Checkout Session (`checkout.session.completed`)."""

    id = serializers.CharField(max_length=255)
    object = _text()
    mode = _text()
    status = _text()
    payment_status = serializers.CharField(max_length=40)
    amount_total = _integer()
    currency = _text()
    customer = _text()
    customer_email = _text()
    customer_details = StripeCustomerDetailsSerializer(required=False, allow_null=True, default=None)
    payment_intent = _text()
    client_reference_id = _text()
    created = _integer()
    metadata = _metadata()


class StripeChargeSerializer(serializers.Serializer):
    """A Charge (`charge.refunded`)."""

    id = serializers.CharField(max_length=255)
    object = _text()
    amount = serializers.IntegerField()
    amount_captured = _integer()
    amount_refunded = serializers.IntegerField()
    currency = serializers.CharField(max_length=10)
    refunded = serializers.BooleanField()
    status = _text()
    payment_intent = _text()
    customer = _text()
    receipt_email = _text()
    created = _integer()
    metadata = _metadata()


STRIPE_OBJECT_SERIALIZERS: dict[str, type[serializers.Serializer]] = {
    "payment_intent.succeeded": StripePaymentIntentSerializer,
    "payment_intent.payment_failed": StripePaymentIntentSerializer,
    "checkout.session.completed": StripeCheckoutSessionSerializer,
    "charge.refunded": StripeChargeSerializer,
}


# --- iDenfy --------------------------------------------------------------------------------------


class IdenfyStatusSerializer(serializers.Serializer):
    """`status`: the overall result and the reasons behind it."""

    overall = serializers.CharField(max_length=40)
    suspicionReasons = _strings()  # iDenfy's own (camelCase) names
    mismatchTags = _strings()
    fraudTags = _strings()
    autoDocument = _text()
    autoFace = _text()
    manualDocument = _text()
    manualFace = _text()
    additionalSteps = _text()


class IdenfyDocumentSerializer(serializers.Serializer):
    """`data`: what was read from the document (only the fields we keep)."""

    docFirstName = _text()
    docLastName = _text()
    docNumber = _text()
    docPersonalCode = _text()
    docExpiry = _text()
    docDob = _text()
    docType = _text()
    docSex = _text()
    docNationality = _text()
    docIssuingCountry = _text()
    selectedCountry = _text()


class IdenfyVerificationSerializer(serializers.Serializer):
    """A verification result callback."""

    clientId = serializers.CharField(max_length=200)
    scanRef = serializers.CharField(max_length=200)
    final = serializers.BooleanField()
    platform = _text()
    startTime = _integer()
    finishTime = _integer()
    status = IdenfyStatusSerializer()
    # DRF's metaclass moves declared fields off the class, so `.data` stays the serializer's property.
    data = IdenfyDocumentSerializer(required=False, allow_null=True, default=dict)  # type: ignore[assignment]
