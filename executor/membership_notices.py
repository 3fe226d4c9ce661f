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
* Embedded mode on SQLite (no Redis): every process using the database runs on this machine, so a
  change is also told by appending a byte to a file beside the database (`<db>-membership`,
  `notice_file`); `current` stats it (a syscall, no database read) and bumps the epoch when it
  grew. On an event loop it stats at most once per turn of the loop (a change fanned out to
  1,000 subscribers checks 1,000 standings in one turn; `MembershipVersions.look`), which
  misses nothing: see there. A management command in another process (`load_circles`,
  `add_member`) or the other server process of `serve --workers 2` is then heard like a Redis
  notice. Other embedded
  databases have no such file: there nothing is shared between sign-ins (`circles.role_cache`).
"""

import asyncio
import contextlib
import logging
import os
import threading
from functools import cache
from pathlib import Path
from typing import Any

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
        self._file_seen: tuple[int, int, int] | None = None  # the notice file's (inode, size, mtime)
        self._looked_on: Any = None  # the loop whose current turn already looked at the file
        self._embedded = True  # no REDIS_URL, as read at that look

    def current(self, circle_id: int) -> Version:
        """The version a role read now is valid at."""
        self.look()
        return self._epoch, self._counts.get(circle_id, 0)

    def look(self) -> None:
        """Hear the notice file (and read the settings it depends on): once per turn of the running
        loop, every time off a loop (a thread, a command).

        A look is forgotten by a callback queued when it is made, so whatever the loop queues
        after the look (a task woken by a frame read later) runs after that callback and looks
        again. Code that uses an earlier look was therefore queued before it, i.e. after
        whatever caused it arrived: a change another process wrote before a client of it sent
        the frame that led here is seen. (Only tasks and callbacks call this, never the protocol
        callbacks that read sockets.)
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and loop is self._looked_on:
            return
        self._embedded = not settings.REDIS_URL
        path = notice_file()
        if path is not None:
            self._hear_file(path)
        if loop is not None:
            self._looked_on = loop
            loop.call_soon(self._forget, loop)

    def _forget(self, loop: Any) -> None:
        if self._looked_on is loop:
            self._looked_on = None

    def trusted(self) -> bool:
        """Whether cached roles may be trusted at all (module `trusted`)."""
        self.look()
        return self._embedded or self.subscribed

    def _hear_file(self, path: str) -> None:
        """Bump every circle when the notice file changed since last looked at (another process told)."""
        try:
            stat = os.stat(path)
            seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        except FileNotFoundError:
            seen = (0, 0, 0)
        except OSError:
            seen = None  # unreadable: never trusted as unchanged
        if seen is None or seen != self._file_seen:
            if self._file_seen is not None or seen is None:
                self.bump_all()
            self._file_seen = seen

    def bump(self, circle_id: int) -> None:
        """The circle's membership changed: every cached role in it is stale."""
        self._counts[circle_id] = self._counts.get(circle_id, 0) + 1

    def bump_all(self) -> None:
        """Notices may have been missed: every cached role in every circle is stale."""
        self._epoch += 1


versions = MembershipVersions()


def trusted() -> bool:
    """Whether cached roles may be trusted at all: always in embedded mode, while subscribed with Redis."""
    return versions.trusted()


def heard_from_every_process() -> bool:
    """Whether a membership change made in any process reaches this one's versions.

    With Redis: while the listener is subscribed. Embedded: when there is a notice file (SQLite).
    A role may be shared across connections (`circles.role_cache`) only then.
    """
    if settings.REDIS_URL:
        return versions.subscribed
    return notice_file() is not None


def notice_file() -> str | None:
    """Embedded mode on a SQLite file: the file beside it that membership changes are appended to."""
    database = settings.DATABASES["default"]
    return _notice_file(settings.REDIS_URL, database["ENGINE"], str(database.get("NAME") or ""))


@cache
def _notice_file(redis_url: str, engine: str, name: str) -> str | None:
    if redis_url or engine != "django.db.backends.sqlite3":
        return None
    if not name or name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
        return None
    return str(Path(name).resolve()) + "-membership"


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
        _append_to_notice_file(circle_id)
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


def _append_to_notice_file(circle_id: int) -> None:
    path = notice_file()
    if path is None:
        return
    try:
        # One byte per change, O_APPEND: concurrent writers never lose each other's growth.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)
    except OSError as exc:
        logger.warning(
            "could not announce the membership change of circle %s in %s (%s): other processes' "
            "cached roles expire within CIRCLES_ROLE_CACHE_SECONDS",
            circle_id,
            path,
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
