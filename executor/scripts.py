"""Running `play` scripts for a WebSocket connection: the consumer's side of the executor.

Two runners with one contract (`circles.session.ScriptRunner`): `QueuedScripts` puts the job
on the Redis queue and waits for the worker's `script.result` on the connection's channel;
`LocalScripts` (embedded mode, no REDIS_URL) runs the same job function in a small thread
pool of this process. Either way the caller gets an answer by its deadline: the result, a
-32000 error, -32012 when the queue cannot take the job, or -32000 `timeout`.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from django.conf import settings
from django.db import close_old_connections

from circleproject.metrics import timed_play
from circles.dispatch import current_request_id
from circles.jsonrpc import EXECUTION_ERROR, EXECUTOR_UNAVAILABLE, RpcError
from circles.session import CircleSession
from executor.jobs import Job
from executor.producer import AsyncJobProducer
from executor.queue import QueueConfig, QueueFull, QueueUnavailable
from executor.runner import run_job

logger = logging.getLogger("executor.scripts")

# How long past the deadline the consumer still waits: the worker's own timeout error
# (which carries the line and column) usually arrives first.
DELIVERY_GRACE_SECONDS = 0.5


def outcome_to_result(outcome: dict[str, Any]) -> dict[str, Any]:
    """The `play` result, or the -32000 error a failed run becomes."""
    if outcome["ok"]:
        return outcome["result"]
    raise RpcError(EXECUTION_ERROR, "Execution error", outcome["error"])


def deadline_passed(timeout_ms: int) -> RpcError:
    """The -32000 `timeout` answered when no result came by the deadline."""
    return RpcError(
        EXECUTION_ERROR,
        "Execution error",
        {"kind": "timeout", "message": f"no result within {timeout_ms} ms", "line": None, "column": None},
    )


def new_job(session: CircleSession, script: str, timeout_ms: int, reply_channel: str = "") -> Job:
    """The job for a `play` by the session's signed-in key."""
    return Job.for_timeout(
        circle_id=session.circle.id,
        circle_key=session.circle.public_key,
        caller_id=session.pubkey,
        caller_role=str(session.role),
        source="ws",
        script=script,
        timeout_ms=timeout_ms,
        reply_channel=reply_channel,
        request_id=current_request_id(),
    )


@cache
def _producer() -> AsyncJobProducer:
    return AsyncJobProducer(QueueConfig.from_settings())


class _Waiting:
    """The `play` requests of one connection waiting for their outcome, by run id."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future] = {}

    async def outcome(self, job: Job, answer: asyncio.Future, start: Callable[[], Awaitable[None]]) -> dict:
        """Start the job, then wait for its outcome until its deadline; the `play` result or RpcError."""
        self.waiting[job.run_id] = answer
        try:
            await start()
            try:
                outcome = await asyncio.wait_for(answer, job.timeout_ms / 1000 + DELIVERY_GRACE_SECONDS)
            except TimeoutError:
                raise deadline_passed(job.timeout_ms) from None
        finally:
            self.waiting.pop(job.run_id, None)
        return outcome_to_result(outcome)

    def give_up(self, error: RpcError) -> None:
        """Answer `error` to every request still waiting (the server is shutting down)."""
        for answer in list(self.waiting.values()):
            if not answer.done():
                answer.set_exception(error)


class QueuedScripts(_Waiting):
    """Runs scripts through the Redis queue; one per connection, fed by its `script.result` events."""

    def __init__(self, reply_channel: str) -> None:
        super().__init__()
        self.reply_channel = reply_channel

    @timed_play
    async def __call__(self, session: CircleSession, script: str, timeout_ms: int) -> dict[str, Any]:
        job = new_job(session, script, timeout_ms, self.reply_channel)

        async def enqueue() -> None:
            try:
                await _producer().enqueue(job)
            except (QueueFull, QueueUnavailable) as exc:
                reason = "queue full" if isinstance(exc, QueueFull) else "queue unavailable"
                raise RpcError(
                    EXECUTOR_UNAVAILABLE, "Executor unavailable", {"reason": reason}, log_detail=str(exc)
                ) from exc

        return await self.outcome(job, asyncio.get_running_loop().create_future(), enqueue)

    def deliver(self, run_id: str, outcome: dict[str, Any]) -> None:
        """A worker's outcome arrived; a late one (nobody waiting) is dropped."""
        answer = self.waiting.get(run_id)
        if answer is not None and not answer.done():
            answer.set_result(outcome)


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(settings.CIRCLES_LOCAL_EXECUTOR_THREADS, thread_name_prefix="rhai")


def _run_in_pool(job: Job, answer: Callable[[dict[str, Any] | BaseException], None]) -> None:
    """Run a job on a pool thread: answer the waiting request first, then record the run."""
    close_old_connections()
    try:
        report = run_job(job)
        answer(report.outcome)
        report.record(worker="in-process")
    except Exception as exc:  # e.g. the row could not be saved; the request must not wait for its deadline
        logger.exception("in-process run %s failed", job.run_id)
        answer(exc)
    finally:
        close_old_connections()


class LocalScripts(_Waiting):
    """Runs scripts in this process (embedded mode): the same job function, in a thread pool."""

    @timed_play
    async def __call__(self, session: CircleSession, script: str, timeout_ms: int) -> dict[str, Any]:
        job = new_job(session, script, timeout_ms)
        loop = asyncio.get_running_loop()
        answer = loop.create_future()

        def settle(result: dict[str, Any] | BaseException) -> None:
            if not answer.done():
                (answer.set_exception if isinstance(result, BaseException) else answer.set_result)(result)

        async def submit() -> None:
            _pool().submit(_run_in_pool, job, lambda result: loop.call_soon_threadsafe(settle, result))

        return await self.outcome(job, answer, submit)

    def deliver(self, run_id: str, outcome: dict[str, Any]) -> None:
        """Nothing arrives over the channel layer in embedded mode."""


def script_runner_for(reply_channel: str) -> QueuedScripts | LocalScripts:
    """The runner a new connection uses: the queue when REDIS_URL is set, else in-process."""
    return QueuedScripts(reply_channel) if settings.REDIS_URL else LocalScripts()
