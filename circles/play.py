"""The `play` runner of a WebSocket connection: the RPC face's side of the executor.

Two runners with one contract (`circles.session.PlayRunner`), one per connection
(`play_runner_for`): `QueuedPlayRunner` puts the job on the Redis queue and waits for the
worker's `script.result` on the connection's channel, which the consumer hands to `deliver`;
`LocalPlayRunner` (embedded mode, no REDIS_URL) hands it to this process's in-process
executor (`executor.local`). Either way the caller gets an answer by its deadline: the result, a
-32000 error, -32012 when the queue cannot take the job, or -32000 `timeout`.

Both hand a job to the executor only within its caller's and its circle's share
(`executor.shares`): over either, the `play` waits in its caller's line (`executor.lines`)
and is answered -32029 if its deadline passes there; one that finds
`CIRCLES_MAX_WAITING_PER_CALLER` of its caller's plays already waiting there is answered -32029
at once, up to `CIRCLES_LINE_REFUSALS_PER_SECOND` of them per caller; past that rate each is held
for a random part of its remaining time (`executor.refusal_pace`). When the connection closes, its `play`
requests still waiting are dropped and its runs stopped: a local run's `rhai.CancelToken` is
cancelled (or its pool task, not started yet, withdrawn); a queued one is announced to the
workers (`executor.cancels`).
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

from django.conf import settings

from circles.jsonrpc import EXECUTION_ERROR, EXECUTOR_UNAVAILABLE, RATE_LIMITED, RpcError
from circles.metrics import timed_play
from circles.session import CircleSession
from executor.cancels import CancelNotices
from executor.jobs import Job
from executor.lines import LineFull, Lines
from executor.local import LocalRun, local_executor
from executor.producer import AsyncJobProducer
from executor.queue import QueueConfig, QueueFull, QueueUnavailable
from executor.refusal_pace import RefusalPace
from executor.shares import CALLER, CIRCLE, LocalShares, OverShare, ShareClaim, ShareLimits

# How long past the deadline the consumer still waits: the worker's own timeout error
# (which carries the line and column) usually arrives first.
DELIVERY_GRACE_SECONDS = 0.5
# How often the head of a caller's line asks Redis again whether a share has room (a run that
# ended in another process; one of this process wakes the line at once).
LINE_POLL_SECONDS = 0.05
OVER_SHARE_REASONS = {
    CALLER: "too many runs in flight for this key",
    CIRCLE: "too many runs in flight in this circle",
}
LINE_FULL_REASON = "too many plays waiting for this key"
Attempt = Callable[[], Awaitable[str | None]]  # hand the job over: None, or the share that refused


def outcome_to_result(outcome: dict[str, Any]) -> dict[str, Any]:
    """The `play` result, or the -32000 error a failed run becomes."""
    if outcome["ok"]:
        return outcome["result"]
    raise RpcError(EXECUTION_ERROR, data=outcome["error"])


def deadline_passed(timeout_ms: int) -> RpcError:
    """The -32000 `timeout` answered when no result came by the deadline."""
    message = f"no result within {timeout_ms} ms"
    return RpcError(
        EXECUTION_ERROR, data={"kind": "timeout", "message": message, "line": None, "column": None}
    )


def over_share(which: str) -> RpcError:
    """The -32029 answered when the caller's or the circle's share stayed full until the deadline."""
    return RpcError(RATE_LIMITED, data={"reason": OVER_SHARE_REASONS[which]})


def line_full() -> RpcError:
    """The -32029 answered at once when the caller's line already holds its most waiting plays."""
    return RpcError(RATE_LIMITED, data={"reason": LINE_FULL_REASON})


def new_job(
    session: CircleSession, script: str, timeout_ms: int, request_id: str, reply_channel: str = ""
) -> Job:
    """The job for a `play` by the session's signed-in key (`request_id`: its JSON-RPC id, as JSON text)."""
    return Job.for_timeout(
        circle_id=session.circle.id,
        circle_key=session.circle.public_key,
        caller_id=session.pubkey,
        caller_role=str(session.role),
        source="ws",
        script=script,
        timeout_ms=timeout_ms,
        reply_channel=reply_channel,
        request_id=request_id,
    )


@cache
def _producer() -> AsyncJobProducer:
    return AsyncJobProducer(QueueConfig.from_settings())


@cache
def _lines() -> Lines:
    return Lines(LINE_POLL_SECONDS, settings.CIRCLES_MAX_WAITING_PER_CALLER)


@cache
def _refusal_pace() -> RefusalPace:
    return RefusalPace(settings.CIRCLES_LINE_REFUSALS_PER_SECOND)


@cache
def _share_limits() -> ShareLimits:
    return ShareLimits.from_settings()


@cache
def _local_shares() -> LocalShares:
    return LocalShares(_share_limits())


@cache
def _cancel_notices() -> CancelNotices:
    return CancelNotices(settings.REDIS_URL, settings.CIRCLES_QUEUE_STREAM)


class PendingPlays:
    """The `play` requests of one connection waiting for their outcome, by run id."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future] = {}

    async def outcome(self, job: Job, attempt: Attempt) -> dict:
        """Hand the job over within its shares, then wait for its outcome; the `play` result or RpcError.

        `settle` brings the outcome. Waiting in the caller's line and for the outcome both end at
        the job's deadline (-32029 in the line, -32000 `timeout` after); a full line refuses at
        once (-32029), or held past the caller's rate of refusals. `give_up` ends any wait at once.
        """
        answer = asyncio.get_running_loop().create_future()
        self.waiting[job.run_id] = answer
        try:
            await self.take_turn(job, attempt, answer)
            try:
                left = max(job.remaining_ms(), 0) / 1000 + DELIVERY_GRACE_SECONDS
                outcome = await asyncio.wait_for(answer, left)
            except TimeoutError:
                raise deadline_passed(job.timeout_ms) from None
        finally:
            self.waiting.pop(job.run_id, None)
        return outcome_to_result(outcome)

    async def take_turn(self, job: Job, attempt: Attempt, abort: asyncio.Future) -> bool:
        """Try `attempt` in the caller's line until it hands the job over; False if `abort` came first."""
        refused = [CALLER]

        async def tried() -> bool:
            which = await attempt()
            if which is not None:
                refused[0] = which
            return which is None

        try:
            async with asyncio.timeout(max(job.remaining_ms(), 0) / 1000):
                return await _lines().wait_turn(job.caller_id, tried, abort)
        except TimeoutError:
            raise over_share(refused[0]) from None
        except LineFull:
            return await self.refuse_in_pace(job, abort)

    @staticmethod
    async def refuse_in_pace(job: Job, abort: asyncio.Future) -> bool:
        """Raise the line-full -32029, at once or held (`executor.refusal_pace`); False on `abort`."""
        now = asyncio.get_running_loop().time()
        delay = _refusal_pace().delay(job.caller_id, now, job.remaining_ms() / 1000)
        if delay > 0:  # the caller is past its rate of refusals: this one is held
            await asyncio.wait([abort], timeout=delay)
            if abort.done():
                return False
        raise line_full()

    def settle(self, run_id: str, outcome: dict[str, Any]) -> None:
        """Hand run `run_id`'s outcome to its waiting request; a late one (nobody waiting) is dropped."""
        answer = self.waiting.get(run_id)
        if answer is not None and not answer.done():
            answer.set_result(outcome)

    def give_up(self, error: Callable[[], RpcError]) -> None:
        """Answer a fresh `error()` to every request still waiting (the server is shutting down)."""
        for answer in list(self.waiting.values()):
            if not answer.done():
                answer.set_exception(error())


class QueuedPlayRunner:
    """Runs `play` jobs through the Redis queue; one per connection, fed by its `script.result` events."""

    def __init__(self, reply_channel: str) -> None:
        self.pending = PendingPlays()
        self.reply_channel = reply_channel

    @timed_play
    async def run(
        self, session: CircleSession, script: str, timeout_ms: int, request_id: str
    ) -> dict[str, Any]:
        """Queue the job, wait for its worker's outcome, and return the `play` result (or raise RpcError)."""
        job = new_job(session, script, timeout_ms, request_id, self.reply_channel)
        limits, stream = _share_limits(), settings.CIRCLES_QUEUE_STREAM
        claim = ShareClaim.for_job(job, stream, limits) if limits.per_caller or limits.per_circle else None
        tried = False

        async def enqueue() -> str | None:
            nonlocal tried
            tried = True
            try:
                await _producer().enqueue(job, claim)
            except OverShare as exc:
                return exc.which
            except (QueueFull, QueueUnavailable) as exc:
                reason = "queue full" if isinstance(exc, QueueFull) else "queue unavailable"
                raise RpcError(EXECUTOR_UNAVAILABLE, data={"reason": reason}, log_detail=str(exc)) from exc
            return None

        try:
            return await self.pending.outcome(job, enqueue)
        except asyncio.CancelledError:  # the connection closed: nobody waits for this run any more
            if tried:  # queued, or perhaps queued (cancelled mid-add): announcing costs nothing
                _cancel_notices().announce(job.run_id, job.deadline)
            raise
        finally:
            _lines().wake(job.caller_id)  # its worker gave the share back before answering

    def deliver(self, run_id: str, outcome: dict[str, Any]) -> None:
        """A worker's outcome arrived; a late one (nobody waiting) is dropped."""
        self.pending.settle(run_id, outcome)

    def give_up(self, error: Callable[[], RpcError]) -> None:
        """Answer `error` to every `play` still waiting (the server is shutting down)."""
        self.pending.give_up(error)


def _soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """Call `callback(*args)` on `loop` from a pool thread (nothing if the loop is gone)."""
    with contextlib.suppress(RuntimeError):  # the loop closed (the process is exiting)
        loop.call_soon_threadsafe(callback, *args)


class LocalPlayRunner:
    """Runs `play` jobs in this process (embedded mode), on the in-process executor."""

    def __init__(self) -> None:
        self.pending = PendingPlays()
        self.running: dict[str, tuple[LocalRun, Callable[[], None]]] = {}

    @timed_play
    async def run(
        self, session: CircleSession, script: str, timeout_ms: int, request_id: str
    ) -> dict[str, Any]:
        """Hand the job to the in-process executor, wait for its outcome, return the `play` result."""
        job = new_job(session, script, timeout_ms, request_id)
        loop = asyncio.get_running_loop()
        shares = _local_shares()

        def answer(outcome: dict[str, Any]) -> None:  # on the pool thread
            _soon(loop, self.pending.settle, job.run_id, outcome)

        def over() -> None:  # on the loop, once: the run is over, its place in the shares is free
            shares.give_back(job.caller_id, job.circle_id)
            _lines().wake_all()  # a circle's share may have room for another caller's line too

        async def submit() -> str | None:
            which = shares.take(job.caller_id, job.circle_id)
            if which is None:
                run = local_executor().submit(job, answer, lambda: _soon(loop, over))
                self.running[job.run_id] = (run, over)
            return which

        try:
            return await self.pending.outcome(job, submit)
        except asyncio.CancelledError:  # the connection closed: stop the run
            self.stop(job.run_id)
            raise
        finally:
            self.running.pop(job.run_id, None)

    def stop(self, run_id: str) -> None:
        """Withdraw run `run_id` from the pool if it has not started, else cancel it."""
        running = self.running.pop(run_id, None)
        if running is None:
            return
        run, over = running
        if run.stop():  # never started: its thread will not give the share back
            over()

    def deliver(self, run_id: str, outcome: dict[str, Any]) -> None:
        """Nothing arrives over the channel layer in embedded mode."""

    def give_up(self, error: Callable[[], RpcError]) -> None:
        """Answer `error` to every `play` still waiting (the server is shutting down)."""
        self.pending.give_up(error)


def play_runner_for(reply_channel: str) -> QueuedPlayRunner | LocalPlayRunner:
    """The play runner a new connection uses: the queue when REDIS_URL is set, else in-process."""
    return QueuedPlayRunner(reply_channel) if settings.REDIS_URL else LocalPlayRunner()
