"""The ASGI process's side of the queue: add jobs without blocking the event loop, pipelined."""

import asyncio

import redis

from executor.held_connection import AsyncHeldConnection
from executor.jobs import Job
from executor.queue import BOUNDED_ADD, QueueConfig, QueueFull, QueueUnavailable
from executor.redis_clients import REDIS_DOWN, async_client
from executor.shares import SHARED_ADD, ShareClaim, refusal

SCRIPTS = (BOUNDED_ADD, SHARED_ADD)  # what a new or restarted Redis is taught when it answers NOSCRIPT


class AsyncJobProducer:
    """Adds jobs for every connection of this process, several per round trip when they come together.

    One sender at a time, on a held connection (`AsyncHeldConnection`): jobs asked for while a round
    trip is in flight wait and go together in the next one, as one write of bounded adds. At
    low load that is one command per job; under load a round trip carries many. Either way it
    skips redis-py's per-call machinery (pool checkout, retry wrapper, pipeline object): ~15% of
    the ASGI CPU per `play` when each job was its own call (docs/benchmarks/play.md).
    """

    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        client = async_client(config.url, timeout=2, connect_timeout=1)
        self.connection = AsyncHeldConnection(client)
        self.waiting: list[tuple[tuple, asyncio.Future]] = []
        self.sender: asyncio.Task | None = None

    async def enqueue(self, job: Job, shares: ShareClaim | None = None) -> str:
        """Add `job` and return its entry id; raises QueueFull or QueueUnavailable.

        With `shares`, the job is added only if its caller's and circle's shares have room
        (and then counted in them, `executor.shares`); otherwise OverShare, nothing added.
        """
        added = asyncio.get_running_loop().create_future()
        stream, bound, raw = self.config.stream, self.config.max_length, job.encode()
        if shares is None:
            command = BOUNDED_ADD.command([stream], [bound, raw])
        else:
            command = shares.add_command(stream, bound, job, raw)
        self.waiting.append((command, added))
        if self.sender is None or self.sender.done():
            self.sender = asyncio.ensure_future(self._send_waiting())
        return await added

    async def _send_waiting(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting, []
            try:
                replies = await self._add_all([command for command, _ in batch])
            except REDIS_DOWN as exc:
                replies = [QueueUnavailable(str(exc)) for _ in batch]
            except BaseException as exc:  # cancelled (shutdown): nobody is left waiting forever
                batch, self.waiting = batch + self.waiting, []
                for _, added in batch:
                    _settle(added, QueueUnavailable(f"not sent: {exc!r}"))
                raise
            for (_, added), reply in zip(batch, replies, strict=True):
                _settle(added, reply)

    async def _add_all(self, commands: list[tuple]) -> list[str | Exception]:
        """One write of bounded adds; per job its entry id, QueueFull, OverShare, or Redis's error."""
        replies = await self.connection.call_many(commands)
        unknown = [i for i, reply in enumerate(replies) if isinstance(reply, redis.exceptions.NoScriptError)]
        if unknown:  # a new or restarted Redis: load the scripts, send again only what it refused
            await self.connection.call_many([script.load_command() for script in SCRIPTS])
            again = await self.connection.call_many([commands[i] for i in unknown])
            for i, reply in zip(unknown, again, strict=True):
                replies[i] = reply
        return [_entry_id(reply, self.config.max_length) for reply in replies]


def _entry_id(reply: bytes | int | Exception | None, max_length: int) -> str | Exception:
    if isinstance(reply, Exception):
        return QueueUnavailable(str(reply))
    over = refusal(reply)
    if over is not None:
        return over
    if not reply:
        return QueueFull(f"{max_length} jobs outstanding")
    assert isinstance(reply, bytes), reply  # the add's other replies: nil, a refusal code, an error
    return reply.decode()


def _settle(added: asyncio.Future, reply: str | Exception) -> None:
    if added.done():  # its caller gave up (cancelled)
        return
    if isinstance(reply, Exception):
        added.set_exception(reply)
    else:
        added.set_result(reply)
