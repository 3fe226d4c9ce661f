"""Webhook edges on a real server (embedded mode): Stripe timestamps in the future, deeply nested events.

A signed Stripe request dated beyond the tolerance in either direction is refused (401). A signed
event nested deeper than the script's EVENT can hold is answered 400 and never queued (it used to
be answered 200 `queued`, then fail every retry); one nested exactly to the limit is processed.
"""

import json
import time
import uuid

import pytest

from tests.e2e.conftest import World
from tests.e2e.webhook_support import Database, http_url, post, wait_for
from tests.helpers.webhooks import stripe_event, stripe_signature

pytestmark = pytest.mark.e2e

SECRET = "whsec_webhook_edges"


@pytest.fixture(scope="module")
def base(start_server) -> str:
    return http_url(start_server(STRIPE_WEBHOOK_SECRET=SECRET, CIRCLES_WEBHOOK_RETRY_BASE_SECONDS="0.2"))


def post_signed(base: str, circle: str, event: dict, *, timestamp: int | None = None) -> tuple[int, dict]:
    body = json.dumps(event).encode()  # orjson (helpers' dumps) stops at 254 levels
    header = {"Stripe-Signature": stripe_signature(body, SECRET, timestamp=timestamp)}
    return post(f"{base}/webhooks/stripe/{circle}", body, header)


def nested(containers: int) -> dict:
    """A map holding maps `containers` deep (itself included)."""
    value: dict = {"leaf": 1}
    for _ in range(containers - 1):
        value = {"a": value}
    return value


def test_stripe_timestamps_beyond_the_tolerance_either_way_are_refused(base: str, world: World) -> None:
    now = int(time.time())
    assert post_signed(base, world.circle, stripe_event(), timestamp=now + 3600) == (
        401,
        {"error": "invalid signature"},
    )
    assert post_signed(base, world.circle, stripe_event(), timestamp=now - 3600)[0] == 401
    assert post_signed(base, world.circle, stripe_event(), timestamp=now + 60)[1]["status"] == "queued"


def test_an_event_nested_too_deep_is_refused_400_and_never_queued(base: str, world: World) -> None:
    db = Database(world)
    event = stripe_event("custom.deep", obj=nested(500), id=f"evt_deep_{uuid.uuid4().hex[:8]}")
    status, answer = post_signed(base, world.circle, event)
    assert (status, answer) == (400, {"error": "malformed event: nested deeper than 64 levels"})
    assert db.event("stripe", event["id"]) is None  # no accepted row, nothing queued
    rejected = db.query(
        "SELECT http_status, error FROM webhooks_webhookevent WHERE status = 'rejected' AND error = ?",
        "nested deeper than 64 levels",
    )
    assert rejected and rejected[-1][0] == 400


def test_an_event_nested_to_the_limit_is_processed(base: str, world: World) -> None:
    db = Database(world)
    # The event map, `data` and `data.object` are three levels: 61 more inside make 64.
    event = stripe_event("custom.deep", obj=nested(62), id=f"evt_limit_{uuid.uuid4().hex[:8]}")
    assert post_signed(base, world.circle, event)[1] == {"status": "queued", "event_id": event["id"]}
    row = wait_for(
        lambda: (found := db.event("stripe", event["id"])) and found["status"] != "queued" and found
    )
    assert row["status"] == "processed" and row["attempts"] == 1, row
