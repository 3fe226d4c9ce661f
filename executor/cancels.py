"""Telling workers that nobody waits for a run any more (its connection closed): drop it or stop it.

The ASGI process that queued the job sets `<stream>:cancelled:<run_id>` (expiring with the job's
deadline) and publishes the run id on `<stream>:cancel`, in one MULTI. In each worker a
`CancelWatcher` thread listens on that channel: a run id heard while its job is in hand cancels
the job's `rhai.CancelToken` (the run fails with kind `cancelled`, its writes rolled back), and a
run id heard earlier makes the worker drop the job unrun. Jobs that were queued before the
watcher's subscription began (a worker that just started or lost Redis) are checked against
the keys instead, one MGET per batch; and while a job runs longer than `POLL_SECONDS`, the
watcher also reads its key now and then, in case a message was lost.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import redis
import rhai

from executor.queue import QueuedJob
from executor.redis_clients import PerLoopClient

logger = logging.getLogger("executor.cancels")

POLL_SECONDS = 0.25  # how often the key of a long-running job is read
HEARD_SLACK_SECONDS = 5.0  # run ids heard are remembered this long past their job's deadline
_background: set[asyncio.Task] = set()


def cancel_key(stream: str, run_id: str) -> str:
    """The key that says run `run_id` of `stream` is cancelled."""
    return f"{stream}:cancelled:{run_id}"


def cancel_channel(stream: str) -> str:
    """The pub/sub channel run ids of cancelled runs of `stream` are published on."""
    return f"{stream}:cancel"


class CancelNotices:
    """The ASGI process's side: announce cancelled runs (rare: on disconnects), never blocking the caller."""

    def __init__(self, url: str, stream: str) -> None:
        self.url = url
        self.stream = stream
        self._redis = PerLoopClient(url, timeout=2, connect_timeout=1)

    def announce(self, run_id: str, deadline: float) -> None:
        """Cancel run `run_id` (whose job expires at the Unix time `deadline`), in the background."""
        task = asyncio.ensure_future(self.send(run_id, deadline))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def send(self, run_id: str, deadline: float) -> None:
        """Set the run's key and publish its id; a Redis failure is logged (the run ends by its deadline)."""
        ttl_ms = max(1, int((deadline - time.time()) * 1000)) + 1000
        try:
            async with self._redis.get().pipeline(transaction=True) as pipe:
                pipe.set(cancel_key(self.stream, run_id), 1, px=ttl_ms)
                pipe.publish(cancel_channel(self.stream), run_id)
                await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            logger.warning("could not cancel run %s (%s): it runs until its deadline", run_id, exc)


class CancelWatcher:
    """A worker's side: a daemon thread that hears cancelled run ids and stops the job in hand."""

    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.client = client
        self.stream = stream
        self.channel = cancel_channel(stream)
        self._lock = threading.Lock()
        self._heard: dict[str, float] = {}  # run id -> when to forget it (monotonic)
        self._in_hand: tuple[str, rhai.CancelToken, float] | None = None  # run id, token, started
        self._subscribed_since: float | None = None  # Unix time the current subscription began
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start listening (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._listen, name="cancel-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop listening; waits up to a second for the thread to end."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(1.0)

    def cancelled_in(self, batch: list[QueuedJob]) -> set[str]:
        """Run ids of `batch` that were cancelled before the worker got to them.

        Jobs queued after the subscription began are covered by what the thread heard; older
        ones (or all, while not subscribed) are read from their keys in one MGET.
        """
        since = self._subscribed_since
        jobs = [queued.job for queued in batch if queued.job is not None]
        unsure = [job.run_id for job in jobs if since is None or job.queued_at < since]
        found = {job.run_id for job in jobs if self.heard(job.run_id)}
        if unsure:
            try:
                values = self.client.mget([cancel_key(self.stream, run_id) for run_id in unsure])
            except redis.RedisError as exc:
                logger.warning("could not read cancellations (%s); running the jobs", exc)
            else:
                found.update(run_id for run_id, value in zip(unsure, values, strict=True) if value)
        return found

    def heard(self, run_id: str) -> bool:
        """Whether `run_id` was heard cancelled."""
        with self._lock:
            return run_id in self._heard

    @contextlib.contextmanager
    def watching(self, run_id: str) -> Iterator[rhai.CancelToken]:
        """The token of the job in hand: cancelled if its run id is heard while it runs."""
        token = rhai.CancelToken()
        with self._lock:
            self._in_hand = (run_id, token, time.monotonic())
            if run_id in self._heard:
                token.cancel()
        try:
            yield token
        finally:
            with self._lock:
                self._in_hand = None

    def hear(self, run_id: str, ttl_seconds: float = 60.0) -> None:
        """Note `run_id` as cancelled; stop it if it is the job in hand."""
        with self._lock:
            self._heard[run_id] = time.monotonic() + ttl_seconds + HEARD_SLACK_SECONDS
            if self._in_hand is not None and self._in_hand[0] == run_id:
                self._in_hand[1].cancel()

    def _forget_old(self) -> None:
        now = time.monotonic()
        with self._lock:
            for run_id in [r for r, until in self._heard.items() if until <= now]:
                del self._heard[run_id]

    def _poll_in_hand(self) -> None:
        with self._lock:
            in_hand = self._in_hand
        if in_hand is None or time.monotonic() - in_hand[2] < POLL_SECONDS:
            return
        if self.client.exists(cancel_key(self.stream, in_hand[0])):
            self.hear(in_hand[0])

    def _listen(self) -> None:
        backoff = 0.1
        last_forget = last_poll = time.monotonic()
        while not self._stopping.is_set():
            pubsub = self.client.pubsub()
            try:
                pubsub.subscribe(self.channel)
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=POLL_SECONDS)
                    if message is not None and message["type"] == "subscribe":
                        self._subscribed_since = time.time()
                        backoff = 0.1
                    elif message is not None and message["type"] == "message":
                        self.hear(message["data"].decode())
                    now = time.monotonic()
                    if now - last_poll >= POLL_SECONDS:
                        last_poll = now
                        self._poll_in_hand()
                    if now - last_forget >= 10.0:
                        last_forget = now
                        self._forget_old()
            except (redis.RedisError, OSError) as exc:
                self._subscribed_since = None
                logger.warning("cancel watcher lost Redis (%s); retrying in %.1fs", exc, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()
