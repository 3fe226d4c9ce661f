"""The webhook view, recording and processing in process: Django's test client, the private Redis,
and `Worker.handle` running the queued jobs (so each step can be checked in turn)."""

import time
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from circles.models import Circle, Record, RecordChange
from executor.models import ScriptRun
from executor.queue import QueueConfig
from executor.worker import Worker
from tests.helpers.keys import WalletKey
from tests.helpers.processes import free_port
from tests.helpers.webhooks import (
    dumps,
    idenfy_result,
    idenfy_signature,
    payment_intent,
    stripe_event,
    stripe_signature,
)
from webhooks import processing
from webhooks.models import WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)

STRIPE_SECRET = "whsec_integration"
IDENFY_SECRET = "idenfy-integration"
Status = WebhookEvent.Status


@pytest.fixture(autouse=True)
def webhook_settings(settings, redis_server):
    """Queue mode on a stream of this test's own; env fallback secrets; quick retries."""
    settings.REDIS_URL = redis_server.url
    settings.CIRCLES_QUEUE_STREAM = f"hooks:{uuid.uuid4().hex[:8]}"
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_SECRET
    settings.IDENFY_WEBHOOK_SECRET = ""
    settings.CIRCLES_WEBHOOK_RETRY_BASE_SECONDS = 0.0
    settings.CIRCLES_WEBHOOK_MAX_ATTEMPTS = 3
    processing._queue.cache_clear()
    yield settings
    processing._queue.cache_clear()
    redis_server.client().delete(settings.CIRCLES_QUEUE_STREAM)


@pytest.fixture
def circle(db) -> Circle:
    return Circle.objects.create(public_key=WalletKey.named("webhook-circle").pubkey, name="hooks")


@pytest.fixture
def worker(webhook_settings) -> Worker:
    worker = Worker(QueueConfig.from_settings(), name="test-worker")
    worker.queue.ensure_group()
    return worker


def run_queued(worker: Worker) -> int:
    """Run every job on the queue now; how many ran."""
    deliveries = worker.queue.read(worker.name, count=100, block_ms=10)
    for delivery in deliveries:
        worker.handle(delivery)
    return len(deliveries)


def post_stripe(circle: Circle, event: dict | bytes, *, secret: str = STRIPE_SECRET, headers=None, **kw):
    body = event if isinstance(event, bytes) else dumps(event)
    extra = {"HTTP_STRIPE_SIGNATURE": stripe_signature(body, secret)} if headers is None else headers
    return Client().post(
        f"/webhooks/stripe/{kw.pop('pk', circle.public_key)}",
        body,
        content_type="application/json",
        **extra,
        **kw,
    )


def post_idenfy(circle: Circle, result: dict, secret: str = IDENFY_SECRET):
    body = dumps(result)
    return Client().post(
        f"/webhooks/idenfy/{circle.public_key}",
        body,
        content_type="application/json",
        HTTP_IDENFY_SIGNATURE=idenfy_signature(body, secret),
    )


def record(circle: Circle, collection: str, key: str) -> dict | None:
    return (
        Record.objects.filter(circle=circle, collection=collection, key=key)
        .values_list("data", flat=True)
        .first()
    )


# --- responses -----------------------------------------------------------------------------------


def test_signed_stripe_event_is_stored_queued_and_processed(circle: Circle, worker: Worker) -> None:
    event = stripe_event("payment_intent.succeeded", payment_intent("pi_ok"))
    response = post_stripe(circle, event, HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert response.status_code == 200 and response.json() == {"status": "queued", "event_id": event["id"]}
    row = WebhookEvent.objects.get(event_id=event["id"])
    assert row.status == Status.QUEUED and row.signature_valid and row.http_status == 200
    assert row.remote_addr == "127.0.0.1"  # no trusted proxy configured: the peer
    assert row.headers["stripe-signature"].startswith("t=") and row.body == dumps(event).decode()
    assert row.payload["data"]["object"]["id"] == "pi_ok"
    assert run_queued(worker) == 1
    row.refresh_from_db()
    assert row.status == Status.PROCESSED and row.attempts == 1 and row.script_run_id is not None
    assert row.script_run.caller_id == "stripe" and row.script_run.caller_role == "service"
    assert record(circle, "payments", "pi_ok")["status"] == "succeeded"


def test_trusted_proxy_forwarded_for_is_recorded(circle: Circle, settings) -> None:
    settings.CIRCLES_TRUSTED_PROXIES = ["127.0.0.0/8"]
    post_stripe(circle, stripe_event(id="evt_proxy"), HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    assert WebhookEvent.objects.get(event_id="evt_proxy").remote_addr == "203.0.113.7"


@pytest.mark.parametrize(
    "case", ["tampered", "wrong secret", "old timestamp", "v0 only", "missing header", "malformed header"]
)
def test_bad_signatures_answer_401_with_one_message(circle: Circle, case: str) -> None:
    body = dumps(stripe_event(id=f"evt_{case.replace(' ', '_')}"))
    header = stripe_signature(body, STRIPE_SECRET)
    if case == "tampered":
        body = body.replace(b"2000", b"9999")
    elif case == "wrong secret":
        header = stripe_signature(body, "whsec_wrong")
    elif case == "old timestamp":
        header = stripe_signature(body, STRIPE_SECRET, timestamp=int(time.time()) - 3600)
    elif case == "v0 only":
        header = header.replace("v1=", "v0=")
    elif case == "malformed header":
        header = "t=yesterday;v1"
    headers = {} if case == "missing header" else {"HTTP_STRIPE_SIGNATURE": header}
    response = post_stripe(circle, body, headers=headers)
    assert response.status_code == 401 and response.json() == {"error": "invalid signature"}
    row = WebhookEvent.objects.get()
    assert row.status == Status.REJECTED and not row.signature_valid and row.event_id is None
    assert row.http_status == 401 and row.error  # the reason is for operators only


def test_secret_rotation_several_v1(circle: Circle) -> None:
    body = dumps(stripe_event())
    header = stripe_signature(body, STRIPE_SECRET, extra_v1=("ab" * 32,))
    assert post_stripe(circle, body, headers={"HTTP_STRIPE_SIGNATURE": header}).status_code == 200


def test_non_json_signed_body_is_400(circle: Circle) -> None:
    response = post_stripe(circle, b"this is not json")
    assert response.status_code == 400
    assert WebhookEvent.objects.get().status == Status.REJECTED


def test_oversized_body_is_413(circle: Circle, settings) -> None:
    settings.CIRCLES_WEBHOOK_MAX_BYTES = 1000
    body = dumps(stripe_event(padding="x" * 2000))
    assert post_stripe(circle, body).status_code == 413
    assert not WebhookEvent.objects.exists()


def test_unknown_circle_provider_and_unconfigured_provider_are_404(circle: Circle) -> None:
    body = dumps(stripe_event())
    assert post_stripe(circle, body, pk=WalletKey.named("nobody").pubkey).status_code == 404
    assert post_stripe(circle, body, pk="not-a-key").status_code == 404
    assert (
        Client()
        .post(f"/webhooks/paypal/{circle.public_key}", body, content_type="application/json")
        .status_code
        == 404
    )
    assert post_idenfy(circle, idenfy_result()).status_code == 404  # no endpoint, no env secret
    WebhookEndpoint.objects.create(circle=circle, provider="stripe", enabled=False)
    assert post_stripe(circle, body).status_code == 404  # disabled for this circle
    circle.is_active = False
    circle.save()
    assert not WebhookEvent.objects.exists()


def test_endpoint_secret_wins_over_the_environment(circle: Circle, worker: Worker) -> None:
    WebhookEndpoint.objects.create(circle=circle, provider="stripe", secret="whsec_circle_own")
    assert post_stripe(circle, stripe_event()).status_code == 401
    assert post_stripe(circle, stripe_event(), secret="whsec_circle_own").status_code == 200


def test_duplicate_is_answered_200_and_not_run_again(circle: Circle, worker: Worker) -> None:
    event = stripe_event(id="evt_dup")
    assert post_stripe(circle, event).json()["status"] == "queued"
    second = post_stripe(circle, event)
    assert second.status_code == 200 and second.json()["status"] == "duplicate"
    assert run_queued(worker) == 1
    assert post_stripe(circle, event).json()["status"] == "duplicate"  # also after processing
    assert run_queued(worker) == 0
    statuses = sorted(WebhookEvent.objects.values_list("status", flat=True))
    assert statuses == ["duplicate", "duplicate", "processed"]


def test_rejected_rows_are_bounded(circle: Circle, settings) -> None:
    settings.CIRCLES_WEBHOOK_NOISE_PER_MINUTE = 5
    settings.CIRCLES_WEBHOOK_NOISE_BODY_BYTES = 100
    for _ in range(20):
        assert post_stripe(circle, b'{"big": "' + b"x" * 5000 + b'"}', headers={}).status_code == 401
    rows = WebhookEvent.objects.filter(status=Status.REJECTED)
    assert rows.count() == 5
    assert all(len(body) <= 100 for body in rows.values_list("body", flat=True))


def test_queue_down_answers_503_and_the_sweep_processes_it_later(
    circle: Circle, worker: Worker, settings
) -> None:
    good_url = settings.REDIS_URL
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    processing._queue.cache_clear()
    event = stripe_event("payment_intent.succeeded", payment_intent("pi_late"))
    response = post_stripe(circle, event)
    assert response.status_code == 503
    row = WebhookEvent.objects.get(event_id=event["id"])
    assert row.status == Status.RECEIVED and row.http_status == 503 and "queue unavailable" in row.error
    assert processing.sweep() == 0  # still down: nothing queued, nothing lost
    settings.REDIS_URL = good_url
    processing._queue.cache_clear()
    WebhookEvent.objects.filter(id=row.id).update(next_attempt_at=timezone.now())
    assert post_stripe(circle, event).json()["status"] == "duplicate"  # the redelivery is not run twice
    assert processing.sweep() == 1
    assert run_queued(worker) == 1
    row.refresh_from_db()
    assert row.status == Status.PROCESSED and record(circle, "payments", "pi_late")["status"] == "succeeded"


def test_lost_job_is_queued_again_after_its_lease(circle: Circle, worker: Worker) -> None:
    post_stripe(circle, stripe_event("payment_intent.succeeded", payment_intent("pi_lost"), id="evt_lost"))
    worker.queue.redis.delete(worker.config.stream)  # the job is lost
    worker.queue.ensure_group()
    assert processing.sweep() == 0  # leased: not yet
    WebhookEvent.objects.filter(event_id="evt_lost").update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    assert processing.sweep() == 1 and run_queued(worker) == 1
    assert WebhookEvent.objects.get(event_id="evt_lost").status == Status.PROCESSED


# --- processing -----------------------------------------------------------------------------------


def test_idenfy_approval_is_recorded_under_kyc(circle: Circle, worker: Worker) -> None:
    WebhookEndpoint.objects.create(circle=circle, provider="idenfy", secret=IDENFY_SECRET)
    result = idenfy_result("client-42", "scan-42")
    assert post_idenfy(circle, result).status_code == 200
    assert post_idenfy(circle, result).json()["status"] == "duplicate"
    run_queued(worker)
    kyc = record(circle, "kyc", "client-42")
    assert kyc["status"] == "APPROVED" and kyc["approved"] is True and kyc["firstName"] == "JOHN"
    assert kyc["nationality"] == "LT" and kyc["scanRef"] == "scan-42"
    # What a member's page watches: the status alone, no personal data.
    assert record(circle, "verifications", "client-42") == {
        "scanRef": "scan-42",
        "status": "APPROVED",
        "final": True,
        "approved": True,
        "finishTime": kyc["finishTime"],
    }
    change = RecordChange.objects.get(circle=circle, collection="verifications")
    assert (change.key, change.op, change.source, change.updated_by) == (
        "client-42",
        "put",
        "webhook:idenfy",
        "idenfy",
    )
    later = idenfy_result("client-42", "scan-42", status={"overall": "SUSPECTED", "suspicionReasons": ["X"]})
    assert post_idenfy(circle, later).json()["status"] == "queued"  # a later status is a new event
    run_queued(worker)
    assert record(circle, "kyc", "client-42")["suspicionReasons"] == ["X"]
    assert record(circle, "verifications", "client-42")["status"] == "SUSPECTED"


def test_default_stripe_script_handles_the_four_types(circle: Circle, worker: Worker) -> None:
    failure = {"code": "card_declined", "message": "Your card was declined."}
    post_stripe(
        circle,
        stripe_event("payment_intent.payment_failed", payment_intent("pi_4", last_payment_error=failure)),
    )
    run_queued(worker)
    assert record(circle, "payments", "pi_4")["failure_code"] == "card_declined"
    session = {
        "id": "cs_4",
        "payment_status": "paid",
        "amount_total": 2000,
        "currency": "eur",
        "payment_intent": "pi_4",
    }
    post_stripe(circle, stripe_event("checkout.session.completed", session))
    charge = {"id": "ch_4", "amount": 2000, "amount_refunded": 500, "currency": "eur", "refunded": False,
              "payment_intent": "pi_4"}  # fmt: skip
    post_stripe(circle, stripe_event("charge.refunded", charge))
    post_stripe(circle, stripe_event("customer.created", {"id": "cus_9"}))
    assert run_queued(worker) == 3
    payment = record(circle, "payments", "pi_4")
    assert payment["status"] == "partially_refunded" and payment["checkout_session"] == "cs_4"
    assert payment["amount_refunded"] == 500
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}


def test_a_payment_is_a_change_members_can_watch_with_the_members_key(circle: Circle, worker: Worker) -> None:
    member = WalletKey.named("webhook-payer").pubkey
    post_stripe(circle, stripe_event(obj=payment_intent("pi_m", metadata={"member": member})))
    session = {"id": "cs_m", "payment_status": "paid", "amount_total": 900, "currency": "eur",
               "client_reference_id": member}  # fmt: skip
    post_stripe(circle, stripe_event("checkout.session.completed", session))
    post_stripe(circle, stripe_event(obj=payment_intent("pi_anon", metadata={})))
    assert run_queued(worker) == 3
    changes = list(RecordChange.objects.filter(circle=circle).order_by("seq"))
    assert [(c.seq, c.collection, c.op, c.source, c.updated_by) for c in changes] == [
        (n, "payments", "put", "webhook:stripe", "stripe") for n in (1, 2, 3)
    ]
    by_key = {change.key: change for change in changes}
    assert by_key["pi_m"].data == record(circle, "payments", "pi_m")
    assert by_key["pi_m"].data["member"] == member and by_key["pi_m"].data["amount"] == 2000
    assert by_key["pi_m"].data["status"] == "succeeded" and by_key["pi_m"].data["currency"] == "eur"
    assert by_key["cs_m"].data["member"] == member and by_key["cs_m"].data["status"] == "succeeded"
    assert "member" not in by_key["pi_anon"].data


def test_custom_script_is_used_instead(circle: Circle, worker: Worker) -> None:
    script = 'db::put("custom", EVENT.id, #{who: CALLER_ID, role: CALLER_ROLE, type: EVENT.type})'
    WebhookEndpoint.objects.create(circle=circle, provider="stripe", script=script)
    post_stripe(circle, stripe_event(id="evt_custom"))
    run_queued(worker)
    assert record(circle, "custom", "evt_custom") == {
        "who": "stripe",
        "role": "service",
        "type": "payment_intent.succeeded",
    }
    assert not Record.objects.filter(collection="payments").exists()


def test_failing_handler_is_retried_then_failed_and_reprocess_runs_it_again(
    circle: Circle, worker: Worker
) -> None:
    endpoint = WebhookEndpoint.objects.create(
        circle=circle, provider="stripe", script='throw "handler broke";'
    )
    before = {status: webhook_events("stripe", status) for status in ("retry", "failed", "processed")}
    post_stripe(circle, stripe_event(id="evt_fail"))
    for expected_attempts in (1, 2):
        assert run_queued(worker) == 1
        row = WebhookEvent.objects.get(event_id="evt_fail")
        assert (
            row.status == Status.RECEIVED
            and row.attempts == expected_attempts
            and "handler broke" in row.error
        )
        assert processing.sweep() == 1  # retry base 0 s: due at once
    assert run_queued(worker) == 1
    row = WebhookEvent.objects.get(event_id="evt_fail")
    assert row.status == Status.FAILED and row.attempts == 3 and row.error.startswith("throw")
    assert ScriptRun.objects.filter(status="failed").count() == 3
    assert processing.sweep() == 0
    endpoint.script = 'db::put("fixed", EVENT.id, #{ok: true})'
    endpoint.save()
    assert processing.reprocess([row.id]) == (1, 0)
    assert run_queued(worker) == 1
    row.refresh_from_db()
    assert row.status == Status.PROCESSED and row.attempts == 1 and row.error == ""
    assert record(circle, "fixed", "evt_fail") == {"ok": True}
    after = {status: webhook_events("stripe", status) for status in before}
    assert {status: after[status] - before[status] for status in before} == {
        "retry": 2,
        "failed": 1,
        "processed": 1,
    }


def test_reprocess_counts_an_event_the_sweep_claimed_first_as_queued(
    circle: Circle, worker: Worker, monkeypatch
) -> None:
    post_stripe(circle, stripe_event(id="evt_swept"))
    assert run_queued(worker) == 1
    row = WebhookEvent.objects.get(event_id="evt_swept")
    requeue = processing.requeue

    def sweep_first(event_id: int, *, now=None) -> bool:
        monkeypatch.setattr(processing, "requeue", requeue)  # the sweep claims with the real one
        assert processing.sweep() == 1  # the periodic sweep, between the reset and this claim
        return requeue(event_id, now=now)

    monkeypatch.setattr(processing, "requeue", sweep_first)
    assert processing.reprocess([row.id]) == (1, 0)
    assert run_queued(worker) == 1
    row.refresh_from_db()
    assert row.status == Status.PROCESSED and row.attempts == 1


def test_reprocess_forgets_the_earlier_run_before_the_event_is_due_again(
    circle: Circle, worker: Worker, monkeypatch
) -> None:
    post_stripe(circle, stripe_event(id="evt_forget"))
    assert run_queued(worker) == 1
    row = WebhookEvent.objects.get(event_id="evt_forget")
    forget = processing.forget_events
    due_when_forgotten = []

    def forget_events(ids: list[int]) -> None:
        # Were it already due, the sweep could run it now and find the earlier run's mark.
        due_when_forgotten.append(WebhookEvent.objects.get(id=row.id).status == Status.RECEIVED)
        forget(ids)

    monkeypatch.setattr(processing, "forget_events", forget_events)
    assert processing.reprocess([row.id]) == (1, 0)
    assert due_when_forgotten == [False]


def webhook_events(provider: str, status: str) -> float:
    """The circles_webhook_events_total sample of this process."""
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "circles_webhook_events_total", {"provider": provider, "status": status}
    )
    return value or 0.0


def test_retry_backoff_grows(settings) -> None:
    settings.CIRCLES_WEBHOOK_RETRY_BASE_SECONDS = 30
    settings.CIRCLES_WEBHOOK_RETRY_MAX_SECONDS = 100
    assert [processing.retry_delay(n) for n in (1, 2, 3, 4)] == [30, 60, 100, 100]


def test_superseded_run_does_not_touch_the_event(circle: Circle, worker: Worker) -> None:
    post_stripe(circle, stripe_event(id="evt_old_run"))
    row = WebhookEvent.objects.get(event_id="evt_old_run")
    processing.reprocess([row.id])  # a second job now owns the event
    assert run_queued(worker) == 2
    row.refresh_from_db()
    assert row.status == Status.PROCESSED and row.attempts == 1


# --- admin ---------------------------------------------------------------------------------------


def test_admin_lists_filters_shows_and_reprocesses(operator: Client, circle: Circle, worker: Worker) -> None:
    post_stripe(circle, stripe_event(id="evt_admin_ok"))
    post_stripe(circle, b"{}", headers={})  # rejected
    run_queued(worker)
    changelist = reverse("admin:webhooks_webhookevent_changelist")
    page = operator.get(changelist, {"status__exact": "processed"}).content.decode()
    rejected = WebhookEvent.objects.get(status=Status.REJECTED)
    assert "evt_admin_ok" in page
    assert reverse("admin:webhooks_webhookevent_change", args=[rejected.id]) not in page
    assert "evt_admin_ok" in operator.get(changelist, {"q": "evt_admin"}).content.decode()
    row = WebhookEvent.objects.get(event_id="evt_admin_ok")
    detail = operator.get(reverse("admin:webhooks_webhookevent_change", args=[row.id])).content.decode()
    assert "pi_" in detail and "stripe-signature" in detail and 'name="_save"' not in detail
    response = operator.post(changelist, {"action": "reprocess", "_selected_action": [row.id]}, follow=True)
    assert "1 events queued again" in response.content.decode()
    assert run_queued(worker) == 1
    assert ScriptRun.objects.filter(source="webhook:stripe").count() == 2


def test_admin_endpoint_secret_is_write_only_and_masked(operator: Client, circle: Circle) -> None:
    add = reverse("admin:webhooks_webhookendpoint_add")
    data = {
        "circle": circle.id,
        "provider": "stripe",
        "secret": "whsec_supersecret1234",
        "enabled": "on",
        "script": "",
    }
    assert operator.post(add, data).status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == "whsec_supersecret1234"
    change = reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.id])
    page = operator.get(change).content.decode()
    assert "whsec_supersecret1234" not in page and "1234" in page
    listing = operator.get(reverse("admin:webhooks_webhookendpoint_changelist")).content.decode()
    assert "supersecret" not in listing
    operator.post(change, {**data, "secret": ""})  # blank keeps it
    assert WebhookEndpoint.objects.get().secret == "whsec_supersecret1234"
    operator.post(change, {**data, "secret": "", "clear_secret": "on"})
    assert WebhookEndpoint.objects.get().secret == ""
