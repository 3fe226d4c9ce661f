"""Sign-in attempts per client address per minute, counted in Redis (all processes) or here.

With `REDIS_URL` set every ASGI process counts in the same Redis key per address, so the limit
holds for the whole deployment however the clients' connections are spread. Without it (or
while Redis cannot be reached) each process counts on its own (`AttemptWindows`).
"""

import logging
import time
from functools import cache

import redis
from django.conf import settings

from circles.address_limits import AttemptWindows
from executor.redis_clients import PerLoopClient

logger = logging.getLogger("circles.sign_in_limits")

WINDOW_SECONDS = 60
FALLBACK_LOG_SECONDS = 60.0  # at most one "counting locally" warning per this many seconds


class SignInLimiter:
    """Allows `limit` sign-in attempts per address per minute (0: no limit).

    A window is a minute from an address's first attempt: in Redis the key is created with a
    60 s expiry and incremented atomically (MULTI: `SET NX EX`, `INCR`), so a crash between the
    two can never leave a key without an expiry.
    """

    def __init__(
        self, limit: int, redis_url: str = "", prefix: str = "circles", kind: str = "sign-ins"
    ) -> None:
        self.limit = limit
        self.kind = kind  # what is counted: the Redis key's middle part
        self.redis_url = redis_url
        self.prefix = prefix
        self.local = AttemptWindows(WINDOW_SECONDS)
        self._redis = PerLoopClient(redis_url, timeout=1, connect_timeout=1)
        self._warned_at = float("-inf")

    async def attempt(self, address: str | None) -> bool:
        """Count one sign-in attempt from `address`; False when it is over the limit.

        An address that cannot be told (None) is not limited (see docs/PROTOCOL.md section 7).
        """
        if self.limit <= 0 or address is None:
            return True
        if self.redis_url:
            try:
                return await self._attempt_in_redis(address)
            except redis.RedisError as exc:
                self._warn_fallback(exc)
        return self.local.attempt(address, self.limit)

    def key(self, address: str) -> str:
        """The Redis key counting `address`'s attempts."""
        return f"{self.prefix}:{self.kind}:{address}"

    async def _attempt_in_redis(self, address: str) -> bool:
        key = self.key(address)
        async with self._redis.get().pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)
            pipe.incr(key)
            _, count = await pipe.execute()
        return int(count) <= self.limit

    def _warn_fallback(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= FALLBACK_LOG_SECONDS:
            self._warned_at = now
            logger.warning("%s counted in this process only: Redis failed (%s)", self.kind, exc)


@cache
def _limiter(limit: int, redis_url: str, prefix: str, kind: str = "sign-ins") -> SignInLimiter:
    return SignInLimiter(limit, redis_url, prefix, kind)


def sign_in_limiter() -> SignInLimiter:
    """This process's limiter for the current settings (one per distinct configuration)."""
    return _limiter(
        settings.CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE, settings.REDIS_URL, settings.CIRCLES_QUEUE_STREAM
    )


def nonce_limiter() -> SignInLimiter:
    """This process's limiter of `GET /auth/nonce` requests per client address per minute."""
    return _limiter(
        settings.CIRCLES_AUTH_NONCES_PER_ADDRESS_PER_MINUTE,
        settings.REDIS_URL,
        settings.CIRCLES_QUEUE_STREAM,
        "auth-nonces-issued",
    )
