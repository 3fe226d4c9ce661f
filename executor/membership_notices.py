"""Invalidating role caches when a circle's membership changes, in this process and in every other.

A connection trusts the role it read at sign-in for `CIRCLES_ROLE_CACHE_SECONDS` (re-reading it
for every `play` cost a third of the play's server CPU). A membership change must not wait that
out, so each process keeps a **membership version** per circle, an integer in memory that costs
nothing to read, and a connection trusts its cached role only while the version it read it at is
still the circle's current one (`current`).

* A change committed in this process bumps the version at once (`changed`, on the
  `circles.membership.membership_changed` signal, which the executor app connects).
* With `REDIS_URL` set, the change is also published (the circle id on `<stream>:membership`),
  and a listener task in every ASGI process bumps its own version when it hears it. The worker
  publishes before it sends the run's answer, so by the time a caller has the answer to the
  run that removed a member, the notice is in every server's socket buffer ahead of anything
  the removed member sends next.
* Pub/sub loses what is published while a listener is disconnected. So the cache is trusted
  only while the listener is subscribed (`trusted`), and each (re)subscription bumps every
  circle's version at once (the epoch): until then every `play` reads the role from the
  database, which is always right, only slower.
"""

import asyncio
import contextlib
import logging
import threading
from functools import cache

import redis
from django.conf import settings

from executor.redis_clients import async_client, sync_client

logger = logging.getLogger("circles.membership")

Version = tuple[int, int]  # (epoch, the circle's own count)


def membership_channel(stream: str) -> str:
    """The pub/sub channel membership changes of the queue `stream`'s deployment are published on."""
    return f"{stream}:membership"


class MembershipVersions:
    """This process's membership versions, per circle id (thread-safe enough: ints under the GIL)."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self._epoch = 0
        self.subscribed = False  # a listener is subscribed now (only matters with REDIS_URL)

    def current(self, circle_id: int) -> Version:
        """The version a role read now is valid at."""
        return self._epoch, self._counts.get(circle_id, 0)

    def bump(self, circle_id: int) -> None:
        """The circle's membership changed: every cached role in it is stale."""
        self._counts[circle_id] = self._counts.get(circle_id, 0) + 1

    def bump_all(self) -> None:
        """Notices may have been missed: every cached role in every circle is stale."""
        self._epoch += 1


versions = MembershipVersions()


def trusted() -> bool:
    """Whether cached roles may be trusted at all: always in embedded mode, while subscribed with Redis."""
    return not settings.REDIS_URL or versions.subscribed


# --- telling (any process: a worker, the embedded pool, a management command, the admin) ---------


@cache
def _publisher() -> redis.Redis:
    return sync_client(timeout=2, connect_timeout=1)


def changed(circle_id: int) -> None:
    """Circle `circle_id`'s membership changed (committed): bump here, and tell the other processes.

    Call it once the change is committed (`transaction.on_commit`). A failed publish is logged:
    the other processes' caches then expire by `CIRCLES_ROLE_CACHE_SECONDS`.
    """
    versions.bump(circle_id)
    if not settings.REDIS_URL:
        return
    try:
        _publisher().publish(membership_channel(settings.CIRCLES_QUEUE_STREAM), str(circle_id))
    except (redis.RedisError, OSError) as exc:
        logger.warning(
            "could not announce the membership change of circle %s (%s): other processes' cached "
            "roles expire within CIRCLES_ROLE_CACHE_SECONDS",
            circle_id,
            exc,
        )


def on_membership_changed(sender: object, *, circle_id: int, **kwargs: object) -> None:
    """The receiver of `circles.membership.membership_changed` (connected by the executor app)."""
    changed(circle_id)


# --- hearing (ASGI processes with REDIS_URL) -----------------------------------------------------

_listener: asyncio.Task | None = None
_listener_lock = threading.Lock()


def start_listening() -> None:
    """Start this process's listener on the running loop, once (no-op without REDIS_URL)."""
    global _listener
    if not settings.REDIS_URL:
        return
    loop = asyncio.get_running_loop()
    with _listener_lock:
        if _listener is not None and not _listener.done() and _listener.get_loop() is loop:
            return
        versions.subscribed = False
        _listener = loop.create_task(_listen(settings.REDIS_URL, settings.CIRCLES_QUEUE_STREAM))


async def _listen(url: str, stream: str) -> None:
    channel = membership_channel(stream)
    backoff = 0.1
    while True:
        client = async_client(url, timeout=None, connect_timeout=1)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel)
            async for message in pubsub.listen():
                if message["type"] == "subscribe":
                    versions.bump_all()  # anything published while unsubscribed was missed
                    versions.subscribed = True
                    backoff = 0.1
                elif message["type"] == "message":
                    with contextlib.suppress(ValueError):
                        versions.bump(int(message["data"]))
        except asyncio.CancelledError:
            versions.subscribed = False
            raise
        except (redis.RedisError, OSError) as exc:
            versions.subscribed = False
            logger.warning("membership listener lost Redis (%s); retrying in %.1fs", exc, backoff)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
                await client.aclose()
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 5.0)
