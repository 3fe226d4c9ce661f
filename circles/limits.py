"""Per-connection limits (from settings) and the rate limiter that enforces the request rate."""

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one WebSocket connection may do; each value is a `CIRCLES_*` setting."""

    max_message_bytes: int
    max_batch: int
    max_in_flight: int
    max_failed_auth: int
    rate_per_second: float
    rate_burst: int
    nonce_ttl_seconds: int
    play_timeout_ms: int
    play_max_timeout_ms: int
    role_cache_seconds: float
    max_invalid_frames: int
    max_subscriptions: int
    max_unread_notifications: int

    @classmethod
    def from_settings(cls) -> "ConnectionLimits":
        """Read the limits from Django settings."""
        return cls(
            max_message_bytes=settings.CIRCLES_MAX_MESSAGE_BYTES,
            max_batch=settings.CIRCLES_MAX_BATCH,
            max_in_flight=settings.CIRCLES_MAX_IN_FLIGHT,
            max_failed_auth=settings.CIRCLES_MAX_FAILED_AUTH,
            rate_per_second=settings.CIRCLES_RATE_PER_SECOND,
            rate_burst=settings.CIRCLES_RATE_BURST,
            nonce_ttl_seconds=settings.CIRCLES_NONCE_TTL_SECONDS,
            play_timeout_ms=settings.CIRCLES_PLAY_TIMEOUT_MS,
            play_max_timeout_ms=settings.CIRCLES_PLAY_MAX_TIMEOUT_MS,
            role_cache_seconds=settings.CIRCLES_ROLE_CACHE_SECONDS,
            max_invalid_frames=settings.CIRCLES_MAX_INVALID_FRAMES,
            max_subscriptions=settings.CIRCLES_MAX_SUBSCRIPTIONS_PER_CONNECTION,
            max_unread_notifications=settings.CIRCLES_MAX_UNREAD_NOTIFICATIONS,
        )


class TokenBucket:
    """A token bucket: `burst` requests at once, refilled at `rate` per second."""

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self) -> bool:
        """Spend one token; False when the bucket is empty (the request is over the rate)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
