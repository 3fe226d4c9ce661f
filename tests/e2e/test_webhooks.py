"""Webhooks end to end: real uvicorn, a real Redis, real `rhai_worker` processes, signed HTTP posts."""

import threading
import time
import uuid

import pytest

from tests.e2e.conftest import World
from tests.e2e.webhook_support import (
    Database,
    create_circle,
    http_url,
    post,
    post_idenfy,
    post_stripe,
    wait_for,
)
from tests.helpers.keys import WalletKey
from tests.helpers.processes import manage, server_env
from tests.helpers.redis_server import RedisServer
from tests.helpers.webhooks import dumps, idenfy_result, payment_intent, stripe_event, stripe_signature

pytestmark = pytest.mark.e2e

STRIPE_SECRET = "whsec_e2e_secret"
IDENFY_SECRET = "idenfy_e2e_secret"
FAST_RETRIES = {
    "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
    "IDENFY_WEBHOOK_SECRET": IDENFY_SECRET,
    "CIRCLES_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "CIRCLES_WEBHOOK_MAX_ATTEMPTS": "3",
    "CIRCLES_WEBHOOK_SWEEP_SECONDS": "0.3",
}
COUNTING_SCRIPT = """
let seen = db::get("runs", EVENT.id) ?? #{n: 0};
db::put("runs", EVENT.id, #{n: seen.n + 1});
"""


@pytest.fixture(scope="module")
def db(world: World) -> Database:
    return Database(world)


@pytest.fixture(scope="module")
def hooks_circle(world: World) -> str:
    """A circle of this module's own (custom and failing handlers go here)."""
    return create_circle(world, "webhooks-e2e", WalletKey.named("e2e-webhooks-circle").pubkey)


@pytest.fixture(scope="module")
def queue_settings(redis_server: RedisServer) -> dict[str, str]:
    return {
        "REDIS_URL": redis_server.url,
        "CIRCLES_QUEUE_STREAM": f"e2e-hooks:{uuid.uuid4().hex[:8]}",
        **FAST_RETRIES,
    }


@pytest.fixture(scope="module")
def base(start_server, start_workers, queue_settings) -> str:
    for _ in range(2):
        start_workers(**queue_settings)
    return http_url(start_server(**queue_settings))


def processed(db: Database, provider: str, event_id: str):
    return lambda: (event := db.event(provider, event_id)) and event["status"] == "processed" and event


def test_signed_stripe_payment_is_recorded_by_the_default_script(
    base: str, world: World, db: Database
) -> None:
    event = stripe_event("payment_intent.succeeded", payment_intent("pi_e2e_1"))
    assert post_stripe(base, world.circle, event, STRIPE_SECRET) == (
        200,
        {"status": "queued", "event_id": event["id"]},
    )
    row = wait_for(processed(db, "stripe", event["id"]))
    assert row["attempts"] == 1 and row["script_run_id"]
    payment = db.record(world.circle, "payments", "pi_e2e_1")
    assert (
        payment["status"] == "succeeded" and payment["amount"] == 2000 and payment["event_id"] == event["id"]
    )


def test_signed_idenfy_approval_is_recorded_by_the_default_script(
    base: str, world: World, db: Database
) -> None:
    result = idenfy_result("e2e-client-1", "e2e-scan-1")
    status, answer = post_idenfy(base, world.circle, result, IDENFY_SECRET)
    assert status == 200 and answer["status"] == "queued"
    wait_for(processed(db, "idenfy", answer["event_id"]))
    kyc = db.record(world.circle, "kyc", "e2e-client-1")
    assert kyc["status"] == "APPROVED" and kyc["approved"] is True and kyc["lastName"] == "DOE"


def test_bad_signature_and_unknown_circle(base: str, world: World) -> None:
    event = stripe_event()
    assert post_stripe(base, world.circle, event, "whsec_wrong")[0] == 401
    assert post_stripe(base, WalletKey.named("e2e-nobody").pubkey, event, STRIPE_SECRET)[0] == 404
    assert post_stripe(base, world.inactive_circle, event, STRIPE_SECRET)[0] == 404


def test_custom_handler_script_is_used_instead(base: str, hooks_circle: str, db: Database) -> None:
    db.set_endpoint(hooks_circle, "stripe", script=COUNTING_SCRIPT)
    event = stripe_event("payment_intent.succeeded", payment_intent("pi_custom"))
    assert post_stripe(base, hooks_circle, event, STRIPE_SECRET)[0] == 200
    wait_for(processed(db, "stripe", event["id"]))
    assert db.record(hooks_circle, "runs", event["id"]) == {"n": 1}
    assert db.record(hooks_circle, "payments", "pi_custom") is None


def test_concurrent_duplicate_deliveries_run_exactly_once(base: str, hooks_circle: str, db: Database) -> None:
    db.set_endpoint(hooks_circle, "stripe", script=COUNTING_SCRIPT)
    events = [stripe_event(id=f"evt_race_{uuid.uuid4().hex[:8]}") for _ in range(8)]
    answers: list[tuple[int, dict]] = []

    def deliver(event: dict, barrier: threading.Barrier) -> None:
        body = dumps(event)
        header = {"Stripe-Signature": stripe_signature(body, STRIPE_SECRET)}
        barrier.wait()
        answers.append(post(f"{base}/webhooks/stripe/{hooks_circle}", body, header))

    for event in events:
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=deliver, args=(event, barrier)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert all(status == 200 for status, _ in answers) and len(answers) == 32
    assert sorted(answer["status"] for _, answer in answers).count("queued") == 8
    for event in events:
        wait_for(processed(db, "stripe", event["id"]))
    time.sleep(1)  # a second run, if there were one, would have finished by now
    for event in events:
        assert db.record(hooks_circle, "runs", event["id"]) == {"n": 1}


def test_failing_handler_is_retried_then_failed_and_reprocess_runs_it_again(
    base: str, world: World, hooks_circle: str, db: Database, queue_settings: dict[str, str]
) -> None:
    db.set_endpoint(
        hooks_circle, "idenfy", script='db::put("tries", EVENT.scanRef, #{at: 1}); throw "broken";'
    )
    status, answer = post_idenfy(base, hooks_circle, idenfy_result("c-fail", "scan-fail"), IDENFY_SECRET)
    assert status == 200
    row = wait_for(lambda: (e := db.event("idenfy", answer["event_id"])) and e["status"] == "failed" and e)
    assert row["attempts"] == 3 and "broken" in row["error"]
    assert db.record(hooks_circle, "tries", "scan-fail") is None  # each failed run rolled back
    runs = db.query(
        "SELECT count(*) FROM executor_scriptrun WHERE source = 'webhook:idenfy' AND status = 'failed'"
    )
    assert runs[0][0] >= 3
    db.set_endpoint(hooks_circle, "idenfy", script='db::put("tries", EVENT.scanRef, #{fixed: true});')
    env = server_env(world.database_url, **queue_settings)
    assert "1 events queued again" in manage(env, "reprocess_webhook_events", str(row["id"])).stdout
    row = wait_for(processed(db, "idenfy", answer["event_id"]))
    assert row["attempts"] == 1 and db.record(hooks_circle, "tries", "scan-fail") == {"fixed": True}


# --- Redis away, and embedded mode ---------------------------------------------------------------


def test_queue_down_answers_503_then_the_event_is_processed(
    start_server, start_workers, world: World, db: Database, tmp_path
) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        settings = {"REDIS_URL": redis.url, "CIRCLES_QUEUE_STREAM": "e2e-hooks-down", **FAST_RETRIES}
        start_workers(**settings)
        base = http_url(start_server(**settings))
        redis.stop()
        event = stripe_event("payment_intent.succeeded", payment_intent("pi_while_down"))
        status, answer = post_stripe(base, world.circle, event, STRIPE_SECRET)
        assert status == 503 and "queue unavailable" in answer["error"]
        row = db.event("stripe", event["id"])
        assert row["status"] == "received" and row["http_status"] == 503
        assert post_stripe(base, world.circle, event, STRIPE_SECRET) == (
            200,
            {"status": "duplicate", "event_id": event["id"]},
        )
        redis.start()  # the worker reconnects and its sweep queues the stored event
        wait_for(processed(db, "stripe", event["id"]), timeout=40)
        assert db.record(world.circle, "payments", "pi_while_down")["status"] == "succeeded"
    finally:
        redis.stop()


def test_embedded_mode_processes_and_retries_in_process(start_server, sqlite_world: World) -> None:
    db = Database(sqlite_world)
    circle = create_circle(sqlite_world, "webhooks-embedded", WalletKey.named("e2e-webhooks-embedded").pubkey)
    base = http_url(start_server(world=sqlite_world, **FAST_RETRIES))  # no REDIS_URL, SQLite: `make run`
    event = stripe_event("payment_intent.succeeded", payment_intent("pi_embedded"))
    assert post_stripe(base, circle, event, STRIPE_SECRET)[0] == 200
    wait_for(processed(db, "stripe", event["id"]))
    assert db.record(circle, "payments", "pi_embedded")["status"] == "succeeded"
    db.set_endpoint(circle, "stripe", script='throw "embedded failure";')
    failing = stripe_event(id=f"evt_embedded_fail_{uuid.uuid4().hex[:6]}")
    assert post_stripe(base, circle, failing, STRIPE_SECRET)[0] == 200
    row = wait_for(lambda: (e := db.event("stripe", failing["id"])) and e["status"] == "failed" and e)
    assert row["attempts"] == 3  # retried by the server's own sweep thread


def test_embedded_mode_retries_after_a_restart_without_new_requests(
    start_server, sqlite_world: World
) -> None:
    db = Database(sqlite_world)
    circle = create_circle(sqlite_world, "webhooks-restart", WalletKey.named("e2e-webhooks-restart").pubkey)
    base = http_url(start_server(world=sqlite_world, CIRCLES_WEBHOOK_LOCAL_SWEEPER="0", **FAST_RETRIES))
    db.set_endpoint(circle, "stripe", script='throw "not yet";')
    event = stripe_event(id=f"evt_restart_{uuid.uuid4().hex[:6]}")
    assert post_stripe(base, circle, event, STRIPE_SECRET)[0] == 200
    wait_for(
        lambda: (e := db.event("stripe", event["id"])) and e["attempts"] == 1 and e["status"] == "received"
    )
    start_server.started[-1].stop()  # a retry is due; nothing sweeps in this server
    start_server(world=sqlite_world, **FAST_RETRIES)  # restarted; no request reaches it
    row = wait_for(lambda: (e := db.event("stripe", event["id"])) and e["status"] == "failed" and e)
    assert row["attempts"] == 3


def test_a_worker_killed_between_commit_and_acknowledgement_applies_the_event_once(
    start_server, start_workers, queue_settings, hooks_circle: str, db: Database, tmp_path
) -> None:
    """The soak's finding: a run that committed and was cut off before its acknowledgement ran again.

    The worker is SIGKILLed by a job-finished hook, after the run's commit and before the job is
    acknowledged; the job is claimed again, finds the mark its first run committed, and the event
    is processed with its counter at 1.
    """
    marker = tmp_path / "died"
    own = {**queue_settings, "CIRCLES_QUEUE_STREAM": f"e2e-once:{uuid.uuid4().hex[:8]}"}
    worker = start_workers(
        **own,
        CIRCLES_QUEUE_CLAIM_IDLE_MS="500",
        CIRCLES_JOB_FINISHED_HOOKS="tests.helpers.crash_hooks.die_once,webhooks.processing.job_finished",
        CIRCLES_TEST_DIE_ONCE_MARKER=str(marker),
    )
    base = http_url(start_server(**own))
    db.set_endpoint(hooks_circle, "stripe", script=COUNTING_SCRIPT)
    event = stripe_event(id=f"evt_once_{uuid.uuid4().hex[:8]}")
    assert post_stripe(base, hooks_circle, event, STRIPE_SECRET)[0] == 200
    wait_for(processed(db, "stripe", event["id"]))
    assert marker.exists() and "exited with -9" in worker.output()  # it really died, after the commit
    time.sleep(1)  # a third run, if there were one, would have finished by now
    assert db.record(hooks_circle, "runs", event["id"]) == {"n": 1}
