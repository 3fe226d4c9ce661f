"""Where HTTP-issued sign-in nonces wait to be redeemed: Redis (every process) or this process.

With `REDIS_URL` set a ticket is one key, `<prefix>:auth-nonce:<nonce>`, holding its JSON with the
TTL as expiry, and a sorted set `<prefix>:auth-nonces` scores each nonce by its expiry (for
`active`). Redemption is one `GETDEL`: Redis runs it atomically, so of any number of processes
redeeming the same nonce at once exactly one gets the ticket and the others get nothing. Without
Redis (embedded mode) a dict in this process does the same (one event loop: no interleaving).
A Redis that cannot be reached is :class:`NonceStoreUnavailable`, never a silent local fallback,
which would let a nonce be redeemed once per process. Nor is a command retried: a redemption
whose answer is lost is unavailable (the nonce may be spent; the client fetches another), never
"unknown nonce" from a second GETDEL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import cache

import redis
from django.conf import settings

from auth_secp import Ticket
from executor.redis_clients import PerLoopClient


class NonceStoreUnavailable(Exception):
    """The store (Redis) could not be reached; the caller answers 503 / an internal error."""


class MemoryNonceStore:
    """Tickets in this process, at most `capacity` unexpired ones (embedded mode)."""

    def __init__(self, capacity: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self.capacity = capacity
        self._clock = clock
        self._tickets: dict[str, Ticket] = {}

    async def put(self, ticket: Ticket) -> bool:
        """Keep `ticket` until it expires; False when the store is full of unexpired tickets."""
        if len(self._tickets) >= self.capacity:
            self._sweep()
            if len(self._tickets) >= self.capacity:
                return False
        self._tickets[ticket.nonce] = ticket
        return True

    async def take(self, nonce: str) -> Ticket | None:
        """Remove and return the ticket of `nonce` (None if unknown, already taken or expired)."""
        ticket = self._tickets.pop(nonce, None)
        if ticket is None or self._clock() >= ticket.expires_at:
            return None
        return ticket

    async def active(self) -> int:
        """How many issued tickets are neither redeemed nor expired."""
        self._sweep()
        return len(self._tickets)

    def _sweep(self) -> None:
        now = self._clock()
        for nonce in [n for n, ticket in self._tickets.items() if now >= ticket.expires_at]:
            del self._tickets[nonce]


class RedisNonceStore:
    """Tickets in Redis, redeemable once on any process sharing it."""

    def __init__(
        self, redis_url: str, prefix: str = "circles", clock: Callable[[], float] = time.time
    ) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.index = f"{prefix}:auth-nonces"
        self._clock = clock
        # No retries: a GETDEL whose answer timed out may have run, and sent again it finds
        # nothing, so a fresh nonce was refused as spent (4401) instead of "try again" (1013).
        self._redis = PerLoopClient(redis_url, timeout=1, connect_timeout=1, retries=0)

    def key(self, nonce: str) -> str:
        """The Redis key holding the ticket of `nonce`."""
        return f"{self.prefix}:auth-nonce:{nonce}"

    async def put(self, ticket: Ticket) -> bool:
        """Store `ticket` with its expiry (always True: Redis' memory is the operator's to size)."""
        ttl = max(1, ticket.expires_at - int(self._clock()))
        try:
            async with self._redis.get().pipeline(transaction=True) as pipe:
                pipe.set(self.key(ticket.nonce), json.dumps(ticket.to_record()), ex=ttl)
                pipe.zadd(self.index, {ticket.nonce: ticket.expires_at})
                pipe.zremrangebyscore(self.index, "-inf", self._clock())
                await pipe.execute()
        except redis.RedisError as exc:
            raise NonceStoreUnavailable(str(exc)) from exc
        return True

    async def take(self, nonce: str) -> Ticket | None:
        """Atomically remove and return the ticket of `nonce` (GETDEL): one caller ever gets it."""
        try:
            async with self._redis.get().pipeline(transaction=False) as pipe:
                pipe.getdel(self.key(nonce))
                pipe.zrem(self.index, nonce)
                raw, _ = await pipe.execute()
        except redis.RedisError as exc:
            raise NonceStoreUnavailable(str(exc)) from exc
        if raw is None:
            return None
        ticket = Ticket.from_record(json.loads(raw))
        return None if self._clock() >= ticket.expires_at else ticket

    async def active(self) -> int:
        """How many issued tickets are neither redeemed nor expired (all processes)."""
        try:
            async with self._redis.get().pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(self.index, "-inf", self._clock())
                pipe.zcard(self.index)
                _, count = await pipe.execute()
        except redis.RedisError as exc:
            raise NonceStoreUnavailable(str(exc)) from exc
        return int(count)


NonceStore = MemoryNonceStore | RedisNonceStore


@cache
def _store(redis_url: str, prefix: str, capacity: int) -> NonceStore:
    if redis_url:
        return RedisNonceStore(redis_url, prefix)
    return MemoryNonceStore(capacity)


def nonce_store() -> NonceStore:
    """This process's store for the current settings (Redis when REDIS_URL is set)."""
    return _store(settings.REDIS_URL, settings.CIRCLES_QUEUE_STREAM, settings.CIRCLES_AUTH_NONCE_MAX_ACTIVE)
