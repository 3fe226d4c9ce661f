"""The ASGI process's side of the queue: add jobs without blocking the event loop, pipelined."""

import asyncio

import redis
import redis.asyncio as aioredis

from executor.jobs import Job
from executor.queue import BOUNDED_ADD, QueueConfig, QueueFull, QueueUnavailable
from executor.redis_line import REDIS_DOWN, AsyncRedisLine, LineScript


class AsyncJobProducer:
    """Adds jobs for every connection of this process, several per round trip when they come together.

    One sender at a time, on a held connection (`AsyncRedisLine`): jobs asked for while a round
    trip is in flight wait and go together in the next one, as one write of bounded adds. At
    low load that is one command per job; under load a round trip carries many. Either way it
    skips redis-py's per-call machinery (pool checkout, retry wrapper, pipeline object): ~15% of
    the ASGI CPU per `play` when each job was its own call (docs/benchmarks/play.md).
    """

    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        client = aioredis.Redis.from_url(config.url, socket_timeout=2, socket_connect_timeout=1)
        self.line = AsyncRedisLine(client)
        self.script = LineScript(BOUNDED_ADD)
        self.waiting: list[tuple[bytes, asyncio.Future]] = []
        self.sender: asyncio.Task | None = None

    async def enqueue(self, job: Job) -> str:
        """Add `job` and return its entry id; raises QueueFull or QueueUnavailable."""
        added = asyncio.get_running_loop().create_future()
        self.waiting.append((job.encode(), added))
        if self.sender is None or self.sender.done():
            self.sender = asyncio.ensure_future(self._send_waiting())
        return await added

    async def _send_waiting(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting, []
            try:
                replies = await self._add_all([raw for raw, _ in batch])
            except REDIS_DOWN as exc:
                replies = [QueueUnavailable(str(exc)) for _ in batch]
            except BaseException as exc:  # cancelled (shutdown): nobody is left waiting forever
                batch, self.waiting = batch + self.waiting, []
                for _, added in batch:
                    _settle(added, QueueUnavailable(f"not sent: {exc!r}"))
                raise
            for (_, added), reply in zip(batch, replies, strict=True):
                _settle(added, reply)

    async def _add_all(self, jobs: list[bytes]) -> list[str | Exception]:
        """One write of bounded adds; per job its entry id, QueueFull, or the error Redis gave."""
        replies = await self._send(jobs)
        unknown = [i for i, reply in enumerate(replies) if isinstance(reply, redis.exceptions.NoScriptError)]
        if unknown:  # a new or restarted Redis: load the script, send again only what it refused
            await self.line.call_many([("SCRIPT", "LOAD", self.script.source)])
            for i, reply in zip(unknown, await self._send([jobs[i] for i in unknown]), strict=True):
                replies[i] = reply
        return [_entry_id(reply, self.config.max_length) for reply in replies]

    async def _send(self, jobs: list[bytes]) -> list:
        stream, bound = self.config.stream, self.config.max_length
        return await self.line.call_many(
            [("EVALSHA", self.script.sha, 1, stream, bound, raw) for raw in jobs]
        )


def _entry_id(reply: bytes | Exception | None, max_length: int) -> str | Exception:
    if isinstance(reply, Exception):
        return QueueUnavailable(str(reply))
    if not reply:
        return QueueFull(f"{max_length} jobs outstanding")
    return reply.decode()


def _settle(added: asyncio.Future, reply: str | Exception) -> None:
    if added.done():  # its caller gave up (cancelled)
        return
    if isinstance(reply, Exception):
        added.set_exception(reply)
    else:
        added.set_result(reply)
