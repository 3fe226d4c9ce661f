"""Unit tests for circles.limits: the token bucket (injected clock) and ConnectionLimits.from_settings."""

import dataclasses
import os
import runpy
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from circles.limits import ConnectionLimits, TokenBucket


class FakeClock:
    """A clock the test moves by hand (times are exact binary fractions, so no rounding)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def drain(bucket: TokenBucket, limit: int = 10_000) -> int:
    """How many takes succeed right now."""
    taken = 0
    while taken < limit and bucket.take():
        taken += 1
    return taken


# --- TokenBucket --------------------------------------------------------------------------------


def test_starts_full_and_allows_a_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_refills_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=3, clock=clock)
    assert drain(bucket) == 3
    clock.advance(0.25)  # 4 per second: one token
    assert bucket.take() is True
    assert bucket.take() is False
    clock.advance(0.5)
    assert drain(bucket) == 2


def test_fractions_of_a_token_accumulate_across_refused_takes() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=1, clock=clock)
    assert bucket.take() is True
    clock.advance(0.125)
    assert bucket.take() is False  # half a token
    clock.advance(0.125)
    assert bucket.take() is True  # the half kept from before makes one


def test_never_holds_more_than_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=3, clock=clock)
    clock.advance(3600)
    assert drain(bucket) == 3
    bucket = TokenBucket(rate=4, burst=3, clock=clock)
    bucket.take()
    clock.advance(10)
    assert drain(bucket) == 3


def test_a_steady_rate_is_sustained() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=8, burst=2, clock=clock)
    drain(bucket)
    for _ in range(100):
        clock.advance(0.125)
        assert bucket.take() is True
        assert bucket.take() is False


def test_without_time_passing_nothing_refills() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1000, burst=5, clock=clock)
    assert drain(bucket) == 5
    assert not any(bucket.take() for _ in range(100))


def test_zero_rate_never_refills_and_zero_burst_never_allows() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=0, burst=2, clock=clock)
    clock.advance(10**6)
    assert drain(bucket) == 2
    clock.advance(10**6)
    assert bucket.take() is False
    assert TokenBucket(rate=100, burst=0, clock=clock).take() is False


def test_reads_its_clock_once_at_creation_and_once_per_take() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    assert clock.reads == 1
    bucket.take()
    bucket.take()
    assert clock.reads == 3


def test_default_clock_is_monotonic() -> None:
    bucket = TokenBucket(rate=1, burst=1)
    assert bucket._clock is time.monotonic
    assert bucket.take() is True
    assert bucket.take() is False


@given(
    rate=st.sampled_from([0.5, 1, 2, 4, 8, 50]),
    burst=st.integers(0, 20),
    steps=st.lists(st.tuples(st.integers(0, 64), st.integers(0, 10)), max_size=40),
)
def test_never_more_than_burst_plus_rate_times_elapsed(rate: float, burst: int, steps) -> None:
    """Over any schedule, accepted requests <= burst + rate * elapsed; the bucket caps at burst."""
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    accepted = 0
    for sixteenths, attempts in steps:
        clock.advance(sixteenths / 16)
        accepted += sum(bucket.take() for _ in range(attempts))
        assert accepted <= burst + rate * clock.now
    clock.advance(10_000)
    assert drain(bucket) == burst


# --- ConnectionLimits ------------------------------------------------------------------------------------

SETTING_OF_FIELD = {
    "max_message_bytes": "CIRCLES_MAX_MESSAGE_BYTES",
    "max_batch": "CIRCLES_MAX_BATCH",
    "max_in_flight": "CIRCLES_MAX_IN_FLIGHT",
    "max_failed_auth": "CIRCLES_MAX_FAILED_AUTH",
    "rate_per_second": "CIRCLES_RATE_PER_SECOND",
    "rate_burst": "CIRCLES_RATE_BURST",
    "nonce_ttl_seconds": "CIRCLES_NONCE_TTL_SECONDS",
    "play_timeout_ms": "CIRCLES_PLAY_TIMEOUT_MS",
    "play_max_timeout_ms": "CIRCLES_PLAY_MAX_TIMEOUT_MS",
    "role_cache_seconds": "CIRCLES_ROLE_CACHE_SECONDS",
    "max_invalid_frames": "CIRCLES_MAX_INVALID_FRAMES",
    "max_subscriptions": "CIRCLES_MAX_SUBSCRIPTIONS_PER_CONNECTION",
    "max_unread_notifications": "CIRCLES_MAX_UNREAD_NOTIFICATIONS",
}


def test_every_field_is_a_setting() -> None:
    assert [f.name for f in dataclasses.fields(ConnectionLimits)] == list(SETTING_OF_FIELD)


def test_from_settings_reads_the_current_settings() -> None:
    limits = ConnectionLimits.from_settings()
    for field, setting in SETTING_OF_FIELD.items():
        assert getattr(limits, field) == getattr(settings, setting)


def test_from_settings_follows_overrides() -> None:
    values = {
        "CIRCLES_MAX_MESSAGE_BYTES": 1024,
        "CIRCLES_MAX_BATCH": 2,
        "CIRCLES_MAX_IN_FLIGHT": 3,
        "CIRCLES_MAX_FAILED_AUTH": 1,
        "CIRCLES_RATE_PER_SECOND": 0.5,
        "CIRCLES_RATE_BURST": 7,
        "CIRCLES_NONCE_TTL_SECONDS": 9,
        "CIRCLES_PLAY_TIMEOUT_MS": 100,
        "CIRCLES_PLAY_MAX_TIMEOUT_MS": 200,
        "CIRCLES_ROLE_CACHE_SECONDS": 1.5,
        "CIRCLES_MAX_INVALID_FRAMES": 4,
        "CIRCLES_MAX_SUBSCRIPTIONS_PER_CONNECTION": 5,
        "CIRCLES_MAX_UNREAD_NOTIFICATIONS": 6,
    }
    with override_settings(**values):
        limits = ConnectionLimits.from_settings()
    assert limits == ConnectionLimits(
        max_message_bytes=1024,
        max_batch=2,
        max_in_flight=3,
        max_failed_auth=1,
        rate_per_second=0.5,
        rate_burst=7,
        nonce_ttl_seconds=9,
        play_timeout_ms=100,
        play_max_timeout_ms=200,
        role_cache_seconds=1.5,
        max_invalid_frames=4,
        max_subscriptions=5,
        max_unread_notifications=6,
    )
    # Outside the override the settings are back.
    assert ConnectionLimits.from_settings().max_batch == settings.CIRCLES_MAX_BATCH


def test_limits_are_frozen() -> None:
    limits = ConnectionLimits.from_settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_batch = 1  # type: ignore[misc]


def test_documented_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults of circleproject/settings.py when no CIRCLES_* variable is set (docs/PROTOCOL.md)."""
    for name in list(os.environ):
        if name.startswith("CIRCLES_") or name in ("ALLOWED_HOSTS", "DEBUG"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SECRET_KEY", "defaults-test")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///:memory:")
    path = Path(__file__).resolve().parents[2] / "circleproject" / "settings.py"
    defaults = runpy.run_path(str(path))
    assert {setting: defaults[setting] for setting in SETTING_OF_FIELD.values()} == {
        "CIRCLES_MAX_MESSAGE_BYTES": 65536,
        "CIRCLES_MAX_BATCH": 20,
        "CIRCLES_MAX_IN_FLIGHT": 32,
        "CIRCLES_MAX_FAILED_AUTH": 5,
        "CIRCLES_RATE_PER_SECOND": 50.0,
        "CIRCLES_RATE_BURST": 100,
        "CIRCLES_NONCE_TTL_SECONDS": 300,
        "CIRCLES_PLAY_TIMEOUT_MS": 10_000,
        "CIRCLES_PLAY_MAX_TIMEOUT_MS": 60_000,
        "CIRCLES_ROLE_CACHE_SECONDS": 5.0,
        "CIRCLES_MAX_INVALID_FRAMES": 100,
        "CIRCLES_MAX_SUBSCRIPTIONS_PER_CONNECTION": 32,
        "CIRCLES_MAX_UNREAD_NOTIFICATIONS": 1000,
    }
    assert defaults["CIRCLES_MAX_CONNECTIONS_PER_ADDRESS"] == 64
    assert defaults["CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE"] == 60
    assert defaults["CIRCLES_ALLOWED_ORIGINS"] == ["localhost", "127.0.0.1", "[::1]"]
    assert defaults["CIRCLES_ALLOW_MISSING_ORIGIN"] is True
    assert defaults["CIRCLES_SERVER_NAME"] == "localhost"
