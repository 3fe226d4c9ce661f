"""Each caller's and each circle's share of the job slots: how many job runs they have on the jobs' stream.

No one member may fill the job slots: a caller may have at most `per_caller` job runs queued or
running at once in a circle (CIRCLES_JOBS_MAX_RUNNING_PER_CALLER), a circle at most `per_circle`
(CIRCLES_JOBS_MAX_RUNNING_PER_CIRCLE; 0: no bound). A run over its share is not refused: its job
stays `dispatched` and the run waits, in its circle's waiting list, until a place frees; the
stream then is first come, first served among the runs within their shares, so another
member's job starts as soon as a slot is free, whatever one member has started.

The mechanism is the play shares' (`executor.shares`): each share is a Redis sorted set of run
ids scored by the run's deadline, and the worker that acknowledges an entry gives its place back
in the same Lua step (`executor.queue.FINISH`, which reads the share keys from the entry). A job
entry also names its circle's waiting list and the limits, so that same step moves the first
waiting runs whose shares now have room onto the stream (`PROMOTE_WAITING`). The check and the
add (`JOB_ADD`) are one script, so concurrent producers (ASGI processes, job slots releasing
dependents) cannot overshoot a share.

Embedded mode counts the same shares in the process (`LocalJobShares`, used by
`executor.job_dispatch.LocalJobs`).
"""

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings

from executor.jobs import Job
from executor.lua import LuaScript

# The stream entry's field naming its circle's waiting list, and the limits it was added under.
WAITING_FIELD, PER_CALLER_FIELD, PER_CIRCLE_FIELD = "waiting", "per_caller", "per_circle"

# KEYS: stream, caller share, circle share, waiting list.
# ARGV: stream bound, job, run id, deadline (Unix ms), caller limit, circle limit (0: none),
# the waiting item (JSON: [run id, caller share, deadline, job]), then any (channel, message)
# pairs to PUBLISH first: the events of the change that released the run, in the same round trip.
# Returns the entry id when added to the stream; 0 when the run waits for a place; false when
# the stream (with the waiting runs) holds its bound.
JOB_ADD = LuaScript("""
for i = 8, #ARGV - 1, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('XLEN', KEYS[1]) + redis.call('LLEN', KEYS[4]) >= tonumber(ARGV[1]) then return false end
local per_caller, per_circle = tonumber(ARGV[5]), tonumber(ARGV[6])
local deadline = tonumber(ARGV[4])
local keep = math.max(deadline - now, 0) + 60000
if (per_caller > 0 and redis.call('ZCARD', KEYS[2]) >= per_caller)
    or (per_circle > 0 and redis.call('ZCARD', KEYS[3]) >= per_circle) then
    redis.call('RPUSH', KEYS[4], ARGV[7])
    if redis.call('PTTL', KEYS[4]) < keep then redis.call('PEXPIRE', KEYS[4], keep) end
    return 0
end
local id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[2], 'run', ARGV[3],
    'caller_share', KEYS[2], 'circle_share', KEYS[3], 'waiting', KEYS[4],
    'per_caller', ARGV[5], 'per_circle', ARGV[6])
for i = 2, 3 do
    redis.call('ZADD', KEYS[i], deadline, ARGV[3])
    if redis.call('PTTL', KEYS[i]) < keep then redis.call('PEXPIRE', KEYS[i], keep) end
end
return id
""")

# A fragment of `executor.queue.FINISH`, run once the finished entry's places are given back:
# `stream` (the stream's key), `waiting`, `circle_share`, `per_caller`, `per_circle` (from the
# entry's fields) are set. Moves the first waiting runs (of the first 64) whose caller's share
# and whose circle's share have room onto the stream, in order.
PROMOTE_WAITING = """
if waiting then
    local clock = redis.call('TIME')
    local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
    local per_caller, per_circle = tonumber(per_caller_text) or 0, tonumber(per_circle_text) or 0
    redis.call('ZREMRANGEBYSCORE', circle_share, '-inf', now)
    for _, item in ipairs(redis.call('LRANGE', waiting, 0, 63)) do
        if per_circle > 0 and redis.call('ZCARD', circle_share) >= per_circle then break end
        local run, caller_share, deadline, job = unpack(cjson.decode(item))
        redis.call('ZREMRANGEBYSCORE', caller_share, '-inf', now)
        if per_caller == 0 or redis.call('ZCARD', caller_share) < per_caller then
            redis.call('LREM', waiting, 1, item)
            redis.call('XADD', stream, '*', 'job', job, 'run', run, 'caller_share', caller_share,
                'circle_share', circle_share, 'waiting', waiting,
                'per_caller', per_caller_text, 'per_circle', per_circle_text)
            redis.call('ZADD', caller_share, deadline, run)
            redis.call('ZADD', circle_share, deadline, run)
            local keep = math.max(deadline - now, 0) + 60000
            for _, key in ipairs({caller_share, circle_share}) do
                if redis.call('PTTL', key) < keep then redis.call('PEXPIRE', key, keep) end
            end
        end
    end
end
"""


@dataclass(frozen=True, slots=True)
class JobShareLimits:
    """Most job runs queued or running per caller (in a circle) and per circle (0: no bound)."""

    per_caller: int
    per_circle: int

    @classmethod
    def from_settings(cls) -> "JobShareLimits":
        """The limits the settings give."""
        return cls(settings.CIRCLES_JOBS_MAX_RUNNING_PER_CALLER, settings.CIRCLES_JOBS_MAX_RUNNING_PER_CIRCLE)


def caller_key(stream: str, circle: int, caller: str) -> str:
    """The sorted set of `caller`'s job runs on `stream` in circle `circle` (run id -> deadline, Unix ms)."""
    return f"{stream}:runs:circle:{circle}:caller:{caller}"


def circle_key(stream: str, circle: int) -> str:
    """The sorted set of circle `circle`'s job runs on `stream`."""
    return f"{stream}:runs:circle:{circle}"


def waiting_key(stream: str, circle: int) -> str:
    """The list of circle `circle`'s job runs waiting for a place on `stream` (oldest first)."""
    return f"{stream}:waiting:circle:{circle}"


def add_args(
    stream: str, bound: int, job: Job, limits: JobShareLimits, publications: Sequence[tuple[str, bytes]] = ()
) -> tuple[list[str], list[Any]]:
    """`JOB_ADD`'s keys and arguments for `job` on `stream`, publishing `publications` first."""
    caller, circle = caller_key(stream, job.circle_id, job.caller_id), circle_key(stream, job.circle_id)
    deadline_ms = int(job.deadline * 1000)
    raw = job.encode()
    item = orjson.dumps([job.run_id, caller, deadline_ms, raw.decode()])
    keys = [stream, caller, circle, waiting_key(stream, job.circle_id)]
    args: list[Any] = [bound, raw, job.run_id, deadline_ms, limits.per_caller, limits.per_circle, item]
    for channel, message in publications:
        args += (channel, message)
    return keys, args


class LocalJobShares:
    """Embedded mode: the same shares counted in the process, and the runs waiting for a place."""

    def __init__(self, limits: JobShareLimits) -> None:
        self.limits = limits
        self.callers: dict[tuple[int, str], int] = {}
        self.circles: dict[int, int] = {}
        self.waiting: deque[Job] = deque()
        self.lock = threading.Lock()

    def _room(self, job: Job) -> bool:
        caller = self.callers.get((job.circle_id, job.caller_id), 0)
        circle = self.circles.get(job.circle_id, 0)
        return not (0 < self.limits.per_caller <= caller or 0 < self.limits.per_circle <= circle)

    def _count(self, job: Job, delta: int) -> None:
        key = (job.circle_id, job.caller_id)
        self.callers[key] = self.callers.get(key, 0) + delta
        self.circles[job.circle_id] = self.circles.get(job.circle_id, 0) + delta
        if self.callers[key] <= 0:
            del self.callers[key]
        if self.circles[job.circle_id] <= 0:
            del self.circles[job.circle_id]

    def take(self, job: Job) -> bool:
        """Count `job` in its shares (True: run it now), or put it in line (False)."""
        with self.lock:
            if self._room(job):
                self._count(job, 1)
                return True
            self.waiting.append(job)
            return False

    def give_back(self, job: Job) -> list[Job]:
        """`job`'s run is over: its place back, and the waiting runs that now have one (counted, in order)."""
        with self.lock:
            self._count(job, -1)
            ready = []
            for waiting in list(self.waiting):
                if self._room(waiting):
                    self.waiting.remove(waiting)
                    self._count(waiting, 1)
                    ready.append(waiting)
            return ready
