"""Every Redis client of the project, made from the settings: one server, or the master Sentinel names.

`REDIS_URL` names the database number and the password (and, without Sentinel, the server).
With `REDIS_SENTINELS` (`host:port,...`) and `REDIS_SENTINEL_MASTER` set, a client asks the
sentinels where the master is on every new connection, so after a failover each client's next
connection goes to the promoted replica by itself; a connection still open to a demoted master
fails on its first write (READONLY) and is made again.

Every connection also has TCP keepalive and a TCP user timeout (`DEAD_PEER_OPTIONS`): a Redis host
that vanishes without closing its sockets (its power or its link cut) is noticed within about
`DEAD_PEER_SECONDS`, even on a connection that only listens (a pub/sub subscription, a blocked
XREADGROUP), instead of after the kernel's 15 minutes of retransmissions. The asyncio connections
turn the kernel's verdict (ETIMEDOUT) into a lost connection (`DeadPeerIsLostConnection`): redis-py
took it for the expiry of a read's own timeout and read again, at once, forever.

Connections are counted (`circles_redis_connects_total`: a rise after start-up is reconnects), and
a connection sent to a master at a new address counts `circles_redis_master_changes_total`.

Nothing here reads Django settings at import time: `circleproject/settings.py` calls `layer_host`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import redis
import redis.asyncio as aioredis
import redis.asyncio.retry
import redis.asyncio.sentinel as async_sentinel
import redis.retry
import redis.sentinel as sync_sentinel
from prometheus_client import Counter
from redis.backoff import NoBackoff

logger = logging.getLogger("circleproject.redis")

DEAD_PEER_SECONDS = 5
# Probe an idle connection after 2 s, every second, give up after 3 unanswered probes; and give up
# on data left unacknowledged for DEAD_PEER_SECONDS (a command sent to a host that is gone).
DEAD_PEER_OPTIONS: dict[int, int] = {
    socket.TCP_KEEPIDLE: 2,
    socket.TCP_KEEPINTVL: 1,
    socket.TCP_KEEPCNT: 3,
    socket.TCP_USER_TIMEOUT: DEAD_PEER_SECONDS * 1000,
}
# Sentinels are asked in turn: one that does not answer within this is skipped.
SENTINEL_TIMEOUT_SECONDS = 0.5
# A failed command is tried once more on a new connection (a stale pooled one after a restart),
# no more: redis-py's default of 3 with backoff, nested under the connect's and the sentinels' own
# retries, kept a webhook delivery waiting over 30 s (nginx's 504) while a master's host was cut
# off. The callers handle Redis being away (-32012, 503 with the event stored, worker backoff).
COMMAND_RETRIES = 1
# An asyncio pool's connections, and how long a command waits for one of them. redis-py's own pool
# refuses a command at once ("Too many connections", a ConnectionError) while 100 are in use: a
# reconnect storm's hundreds of sign-ins at once on one process then failed as "Redis away"
# although Redis answered in microseconds. Ours wait for a free connection instead.
POOL_CONNECTIONS = 100
POOL_WAIT_SECONDS = 5.0
# What a client raises when Redis is away (down, unreachable, timed out), as against an error reply.
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, OSError)


def _retry(retries: int, asyncio: bool) -> redis.retry.Retry | aioredis.retry.Retry:
    """redis-py's retry policy object (the asyncio one for asyncio clients): `retries` at once."""
    cls = aioredis.retry.Retry if asyncio else redis.retry.Retry
    return cls(NoBackoff(), retries)


def parse_sentinels(entries: list[str] | tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """`["10.0.0.5:26379", ...]` as (host, port) pairs; ValueError names a malformed entry."""
    pairs = []
    for entry in entries:
        host, _, port = entry.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"REDIS_SENTINELS entry {entry!r} is not host:port")
        pairs.append((host.strip("[]"), int(port)))
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where Redis is: `url` alone, or the master `master` the `sentinels` name (db, password: `url`)."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""
    sentinel_password: str = ""

    @classmethod
    def from_settings(cls, url: str | None = None) -> RedisTarget:
        """The target the settings describe (`url` instead of REDIS_URL when given)."""
        from django.conf import settings

        return cls(
            url=settings.REDIS_URL if url is None else url,
            sentinels=parse_sentinels(getattr(settings, "REDIS_SENTINELS", ())),
            master=getattr(settings, "REDIS_SENTINEL_MASTER", ""),
            sentinel_password=getattr(settings, "REDIS_SENTINEL_PASSWORD", ""),
        )

    @property
    def uses_sentinel(self) -> bool:
        """Whether the master is found through sentinels."""
        return bool(self.sentinels)

    @property
    def plain_tcp(self) -> bool:
        """Whether `url` is plain TCP (redis://); TLS and Unix sockets keep redis-py's connection classes."""
        return urlparse(self.url).scheme == "redis"

    def connection_kwargs(
        self,
        *,
        timeout: float | None,
        connect_timeout: float,
        asyncio: bool = False,
        retries: int = COMMAND_RETRIES,
    ) -> dict[str, Any]:
        """A connection's keyword arguments: db/password (Sentinel), timeouts, keepalive, `retries`.

        A retry sends a command again after a timeout, when Redis may have run it already: a
        client of commands that must not run twice (GETDEL) asks for `retries=0`.
        """
        kwargs: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout,
            "retry": _retry(retries, asyncio),
        }
        if self.uses_sentinel or urlparse(self.url).scheme in ("redis", "rediss"):  # TCP, not a Unix socket
            kwargs.update(socket_keepalive=True, socket_keepalive_options=DEAD_PEER_OPTIONS)
        if self.uses_sentinel:
            parsed = urlparse(self.url)
            path = parsed.path.lstrip("/")
            kwargs["db"] = int(path) if path else 0
            if parsed.password:
                kwargs["password"] = unquote(parsed.password)
            if parsed.username:
                kwargs["username"] = unquote(parsed.username)
        return kwargs

    def sentinel_kwargs(self, *, asyncio: bool = False) -> dict[str, Any]:
        """How the sentinels themselves are reached: one try each (the next sentinel is the retry)."""
        kwargs: dict[str, Any] = {
            "socket_timeout": SENTINEL_TIMEOUT_SECONDS,
            "socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS,
            "retry": _retry(0, asyncio),
        }
        if self.sentinel_password:
            kwargs["password"] = self.sentinel_password
        return kwargs

    def pool(
        self, *, timeout: float | None, connect_timeout: float, name: str | None = None
    ) -> redis.ConnectionPool:
        """A blocking-client pool of its own (`name`: CLIENT SETNAME of every connection)."""
        kwargs = self.connection_kwargs(timeout=timeout, connect_timeout=connect_timeout)
        if name:
            kwargs["client_name"] = name
        if self.uses_sentinel:
            manager = sync_sentinel.Sentinel(list(self.sentinels), sentinel_kwargs=self.sentinel_kwargs())
            return sync_sentinel.SentinelConnectionPool(
                self.master, manager, connection_class=CountedSentinelConnection, **kwargs
            )
        if self.plain_tcp:
            kwargs["connection_class"] = CountedConnection
        return redis.ConnectionPool.from_url(self.url, **kwargs)

    def async_pool(
        self, *, timeout: float | None, connect_timeout: float, retries: int = COMMAND_RETRIES
    ) -> aioredis.ConnectionPool:
        """An asyncio-client pool of its own (bound to the loop it is first used on).

        At most POOL_CONNECTIONS connections; a command finding them all busy waits up to
        POOL_WAIT_SECONDS for one (then a ConnectionError), rather than failing at once.
        """
        kwargs = self.connection_kwargs(
            timeout=timeout, connect_timeout=connect_timeout, asyncio=True, retries=retries
        )
        kwargs.update(max_connections=POOL_CONNECTIONS, timeout=POOL_WAIT_SECONDS)
        if self.uses_sentinel:
            sentinel_kwargs = self.sentinel_kwargs(asyncio=True)
            manager = async_sentinel.Sentinel(list(self.sentinels), sentinel_kwargs=sentinel_kwargs)
            return BlockingSentinelConnectionPool(
                self.master, manager, connection_class=AsyncCountedSentinelConnection, **kwargs
            )
        if self.plain_tcp:
            kwargs["connection_class"] = AsyncCountedConnection
        return aioredis.BlockingConnectionPool.from_url(self.url, **kwargs)

    def layer_host(self, *, timeout: float = 5.0, connect_timeout: float = 1.0) -> dict[str, Any]:
        """The `hosts` entry of channels-redis' pub/sub layer for this target (its `create_pool` format)."""
        kwargs = self.connection_kwargs(timeout=timeout, connect_timeout=connect_timeout, asyncio=True)
        if self.uses_sentinel:
            return {
                "sentinels": list(self.sentinels),
                "master_name": self.master,
                "sentinel_kwargs": self.sentinel_kwargs(asyncio=True),
                "connection_class": AsyncCountedSentinelConnection,
                **kwargs,
            }
        if self.plain_tcp:
            kwargs["connection_class"] = AsyncCountedConnection
        return {"address": self.url, **kwargs}


class BlockingSentinelConnectionPool(async_sentinel.SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The sentinels' master pool, waiting for a free connection as `aioredis.BlockingConnectionPool` does."""


def sync_client(
    url: str | None = None, *, timeout: float | None, connect_timeout: float, name: str | None = None
) -> redis.Redis:
    """A blocking client on a pool of its own, for REDIS_URL (or `url`) as the settings reach it."""
    target = RedisTarget.from_settings(url)
    pool = target.pool(timeout=timeout, connect_timeout=connect_timeout, name=name)
    return redis.Redis(connection_pool=pool)


def async_client(
    url: str | None = None,
    *,
    timeout: float | None,
    connect_timeout: float,
    retries: int = COMMAND_RETRIES,
) -> aioredis.Redis:
    """An asyncio client on a pool of its own, for REDIS_URL (or `url`) as the settings reach it."""
    target = RedisTarget.from_settings(url)
    pool = target.async_pool(timeout=timeout, connect_timeout=connect_timeout, retries=retries)
    return aioredis.Redis(connection_pool=pool)


class PerLoopClient:
    """An asyncio client made on the running loop, and made again when the loop changes.

    An asyncio client's connections belong to the loop they were opened on, and a process may
    run more than one loop over its life (tests, `async_to_sync`).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float | None,
        connect_timeout: float,
        retries: int = COMMAND_RETRIES,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self._client: aioredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> aioredis.Redis:
        """The client of the running loop."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = async_client(
                self.url, timeout=self.timeout, connect_timeout=self.connect_timeout, retries=self.retries
            )
            self._loop = loop
        return self._client


def renamed(client: redis.Redis, name: str) -> redis.Redis:
    """A client to the same Redis (or the same Sentinel master) as `client`, with connections named `name`."""
    pool = client.connection_pool
    kwargs = {key: value for key, value in pool.connection_kwargs.items() if key != "connection_pool"}
    kwargs["client_name"] = name
    if isinstance(pool, sync_sentinel.SentinelConnectionPool):
        new_pool: redis.ConnectionPool = sync_sentinel.SentinelConnectionPool(
            pool.service_name, pool.sentinel_manager, connection_class=pool.connection_class, **kwargs
        )
    else:
        new_pool = redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    return redis.Redis(connection_pool=new_pool)


# --- counting connections and master changes -----------------------------------------------------

REDIS_CONNECTS = Counter(
    "circles_redis_connects_total", "Connections made to Redis (after start-up: reconnects)."
)
REDIS_MASTER_CHANGES = Counter(
    "circles_redis_master_changes_total",
    "Times this process's Redis connections found the master at a new address (Sentinel failover).",
)

_lock = threading.Lock()
_master: tuple[str, int] | None = None  # the master this process's last Sentinel connection reached


def connected(host: str, port: int, *, via_sentinel: bool) -> None:
    """Count a new connection; one to a master at another address than before counts a change."""
    global _master
    REDIS_CONNECTS.inc()
    if not via_sentinel:
        return
    address = (host, int(port))
    with _lock:
        before, _master = _master, address
    if before is not None and before != address:
        REDIS_MASTER_CHANGES.inc()
        logger.warning("Redis master is now %s:%s (was %s:%s)", *address, *before)


def current_master() -> tuple[str, int] | None:
    """The master this process last connected to through the sentinels (None: not yet, or no Sentinel)."""
    return _master


class CountedConnection(redis.Connection):
    """A blocking connection that is counted when it connects."""

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        """Connect (if not connected), then count the new connection."""
        fresh = self._sock is None
        super().connect_check_health(*args, **kwargs)
        if fresh and self._sock is not None:
            connected(self.host, self.port, via_sentinel=False)


class CountedSentinelConnection(sync_sentinel.SentinelManagedConnection):
    """A blocking connection to the master the sentinels name, counted when it connects.

    redis-py asks the sentinels only in `connect()`, which its pool calls; a connection used on
    its own (`executor.held_connection`) connects from `send_command` through `connect_check_health`,
    which would go to the last address (or localhost). Here every way in asks the sentinels.
    """

    _locating = False

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        """Connect (if not connected) to the master the sentinels name now; count it."""
        if self._sock is not None:
            return
        if not self._locating:
            self._locating = True
            try:
                self.connect()  # asks the sentinels, then comes back here through connect_to
            finally:
                self._locating = False
            return
        super().connect_check_health(*args, **kwargs)
        if self._sock is not None:
            connected(self.host, self.port, via_sentinel=True)


class DeadPeerIsLostConnection:
    """For asyncio connections: a socket the kernel timed out (ETIMEDOUT) is a lost connection.

    When keepalive or the TCP user timeout gives up on a silent peer, the socket fails with
    `TimeoutError(ETIMEDOUT)`, and asyncio's stream keeps that error and raises it again on every
    later read, at once. redis-py's `read_response` takes any TimeoutError under a read with its
    own timeout (every pub/sub read: `listen()`, `get_message(timeout=...)`) for that timeout's
    expiry and returns "no message", so its callers read again without ever yielding to the event
    loop: a cut-off master froze whole ASGI processes. Raised as ConnectionAbortedError instead,
    it is what it is: redis-py drops the connection and its callers reconnect through the
    sentinels. A read's own timeout (asyncio's, without an errno) is left alone.

    The hook is redis-py's `_read_response_from_parser`, which every reply goes through inside
    `read_response`'s error handling; tests/integration/test_redis_clients.py fails if it stops
    being called there.
    """

    async def _read_response_from_parser(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._read_response_from_parser(*args, **kwargs)  # type: ignore[misc]
        except TimeoutError as exc:
            if exc.errno is None:
                raise
            raise ConnectionAbortedError(exc.errno, f"Redis stopped answering: {exc.strerror}") from exc


class AsyncCountedConnection(DeadPeerIsLostConnection, aioredis.Connection):
    """An asyncio connection that is counted when it connects."""

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        """Connect (if not connected), then count the new connection."""
        fresh = not self.is_connected
        await super().connect_check_health(*args, **kwargs)
        if fresh and self.is_connected:
            connected(self.host, self.port, via_sentinel=False)


class AsyncCountedSentinelConnection(DeadPeerIsLostConnection, async_sentinel.SentinelManagedConnection):
    """An asyncio connection to the master the sentinels name, counted when it connects.

    Every way of connecting asks the sentinels (see `CountedSentinelConnection`).
    """

    _locating = False

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        """Connect (if not connected) to the master the sentinels name now; count it."""
        if self.is_connected:
            return
        if not self._locating:
            self._locating = True
            try:
                await self.connect()  # asks the sentinels, then comes back here through connect_to
            finally:
                self._locating = False
            return
        await super().connect_check_health(*args, **kwargs)
        if self.is_connected:
            connected(self.host, self.port, via_sentinel=True)
