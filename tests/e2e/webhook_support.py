"""Helpers for the webhook end-to-end tests: HTTP posts, and reading the server's database (PG or SQLite)."""

import datetime
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import psycopg

from tests.e2e.conftest import World
from tests.helpers.processes import manage, server_env
from tests.helpers.webhooks import dumps, idenfy_signature, post, stripe_signature


def http_url(ws_url: str) -> str:
    """The http:// base of a server `start_server` returned as ws://."""
    return ws_url.replace("ws://", "http://", 1)


def post_stripe(base: str, circle: str, event: dict, secret: str) -> tuple[int, dict]:
    body = dumps(event)
    return post(
        f"{base}/webhooks/stripe/{circle}", body, {"Stripe-Signature": stripe_signature(body, secret)}
    )


def post_idenfy(base: str, circle: str, result: dict, secret: str) -> tuple[int, dict]:
    body = dumps(result)
    return post(
        f"{base}/webhooks/idenfy/{circle}", body, {"Idenfy-Signature": idenfy_signature(body, secret)}
    )


class Database:
    """Direct reads and small writes on the end-to-end database (SQL with `?` placeholders)."""

    def __init__(self, world: World) -> None:
        self.url = world.database_url
        self.sqlite = self.url.startswith("sqlite:///")

    def query(self, sql: str, *params: Any) -> list[tuple]:
        if not self.sqlite:
            with psycopg.connect(self.url, autocommit=True) as connection:
                cursor = connection.execute(sql.replace("?", "%s"), params)
                return cursor.fetchall() if cursor.description else []
        connection = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=20)
        try:
            with connection:
                return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def circle_id(self, public_key: str) -> int:
        return self.query("SELECT id FROM circles_circle WHERE public_key = ?", public_key)[0][0]

    def set_endpoint(self, circle: str, provider: str, *, script: str = "", secret: str = "") -> None:
        """Create or replace the circle's WebhookEndpoint for `provider`."""
        circle_id = self.circle_id(circle)
        now = datetime.datetime.now(datetime.UTC)
        self.query(
            "DELETE FROM webhooks_webhookendpoint WHERE circle_id = ? AND provider = ?", circle_id, provider
        )
        self.query(
            "INSERT INTO webhooks_webhookendpoint (circle_id, provider, secret, enabled, script, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            circle_id,
            provider,
            secret,
            True,
            script,
            now if not self.sqlite else now.strftime("%Y-%m-%d %H:%M:%S"),
        )

    def event(self, provider: str, event_id: str) -> dict | None:
        rows = self.query(
            "SELECT id, status, attempts, error, script_run_id, http_status FROM webhooks_webhookevent"
            " WHERE provider = ? AND event_id = ? AND status NOT IN ('rejected', 'duplicate')",
            provider,
            event_id,
        )
        if not rows:
            return None
        keys = ("id", "status", "attempts", "error", "script_run_id", "http_status")
        return dict(zip(keys, rows[0], strict=True))

    def record(self, circle: str, collection: str, key: str) -> dict | None:
        rows = self.query(
            "SELECT data FROM circles_record WHERE circle_id = ? AND collection = ? AND key = ?",
            self.circle_id(circle),
            collection,
            key,
        )
        if not rows:
            return None
        return json.loads(rows[0][0]) if isinstance(rows[0][0], str) else rows[0][0]  # jsonb arrives decoded


def wait_for(check: Callable[[], Any], timeout: float = 30, interval: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)


def create_circle(world: World, name: str, pubkey: str) -> str:
    """A circle of the test's own in the end-to-end database."""
    manage(server_env(world.database_url), "create_circle", "--name", name, "--pubkey", pubkey)
    return pubkey
