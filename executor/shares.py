"""Each caller's and each circle's share of the executor: how many `play` runs they have in flight.

A run is in flight from the moment it is handed to the executor (submitted to the thread pool,
or added to the Redis stream) until it is over (its thread returned, or a worker acknowledged
it). A caller (signed-in key) may have at most `per_caller` runs in flight across all its
connections, a circle at most `per_circle` (0: no bound); a `play` over either share waits in
its caller's line (`executor.lines`) and never reaches the executor meanwhile.

Two counters with the same rules:

* `LocalShares` counts in this process (embedded mode: the process is the whole executor);
* with REDIS_URL, every ASGI process and worker counts in Redis. The check and the add are one
  Lua script run with the job's XADD (`SHARED_ADD`), so concurrent processes cannot overshoot a
  share and a `play` costs no extra round trip. Each share is a sorted set of run ids scored
  by the run's deadline: the worker removes the run when it acknowledges the job
  (`executor.queue`, `FINISH`), and an entry whose deadline passed no longer counts, so a
  crashed process can hold a place at most until that run's deadline, never forever.
"""

from dataclasses import dataclass

from django.conf import settings

from executor.jobs import Job
from executor.lua import LuaScript

CALLER, CIRCLE = "caller", "circle"  # which share refused a run

# The stream entry's fields naming its shares: `FINISH` in executor/queue.py reads them.
RUN_FIELD, CALLER_SHARE_FIELD, CIRCLE_SHARE_FIELD = "run", "caller_share", "circle_share"

# KEYS: stream, caller share, circle share.
# ARGV: stream bound, job, run id, deadline (Unix ms), caller limit, circle limit (0: none).
# Returns the entry id; false when the stream is full (checked first: a full queue answers at
# once); 1 over the caller's share, 2 over the circle's.
SHARED_ADD = LuaScript("""
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
local per_caller, per_circle = tonumber(ARGV[5]), tonumber(ARGV[6])
if per_caller > 0 and redis.call('ZCARD', KEYS[2]) >= per_caller then return 1 end
if per_circle > 0 and redis.call('ZCARD', KEYS[3]) >= per_circle then return 2 end
local id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[2], 'run', ARGV[3],
    'caller_share', KEYS[2], 'circle_share', KEYS[3])
local deadline = tonumber(ARGV[4])
local keep = math.max(deadline - now, 0) + 60000
for i = 2, 3 do
    redis.call('ZADD', KEYS[i], deadline, ARGV[3])
    if redis.call('PTTL', KEYS[i]) < keep then redis.call('PEXPIRE', KEYS[i], keep) end
end
return id
""")
REFUSALS = {1: CALLER, 2: CIRCLE}


class OverShare(Exception):
    """The run was not handed to the executor: its caller's or its circle's share is taken."""

    def __init__(self, which: str) -> None:
        super().__init__(f"the {which}'s runs in flight are at its share")
        self.which = which


@dataclass(frozen=True, slots=True)
class ShareLimits:
    """Most runs in flight per caller and per circle (`CIRCLES_MAX_RUNS_PER_*`; 0: no bound)."""

    per_caller: int
    per_circle: int

    @classmethod
    def from_settings(cls) -> "ShareLimits":
        """The limits the settings give."""
        return cls(settings.CIRCLES_MAX_RUNS_PER_CALLER, settings.CIRCLES_MAX_RUNS_PER_CIRCLE)


class LocalShares:
    """Runs in flight per caller and per circle in this process (pure counting, one event loop)."""

    def __init__(self, limits: ShareLimits) -> None:
        self.limits = limits
        self._callers: dict[str, int] = {}
        self._circles: dict[int, int] = {}

    def take(self, caller: str, circle: int) -> str | None:
        """Count one more run of `caller` in `circle`; None when counted, else the share that refused."""
        if 0 < self.limits.per_caller <= self._callers.get(caller, 0):
            return CALLER
        if 0 < self.limits.per_circle <= self._circles.get(circle, 0):
            return CIRCLE
        self._callers[caller] = self._callers.get(caller, 0) + 1
        self._circles[circle] = self._circles.get(circle, 0) + 1
        return None

    def give_back(self, caller: str, circle: int) -> None:
        """A run counted by `take` is over."""
        _count_out(self._callers, caller)
        _count_out(self._circles, circle)

    def of_caller(self, caller: str) -> int:
        """Runs of `caller` in flight."""
        return self._callers.get(caller, 0)

    def of_circle(self, circle: int) -> int:
        """Runs in `circle` in flight."""
        return self._circles.get(circle, 0)


def _count_out(counts: dict, key: str | int) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def caller_share_key(stream: str, caller: str) -> str:
    """The Redis sorted set of `caller`'s runs in flight (run id -> deadline in Unix ms)."""
    return f"{stream}:runs:caller:{caller}"


def circle_share_key(stream: str, circle: int) -> str:
    """The Redis sorted set of the runs in flight in circle `circle` (its database id)."""
    return f"{stream}:runs:circle:{circle}"


@dataclass(frozen=True, slots=True)
class ShareClaim:
    """The shares a queued job counts against, for `SHARED_ADD`."""

    caller_key: str
    circle_key: str
    limits: ShareLimits

    @classmethod
    def for_job(cls, job: Job, stream: str, limits: ShareLimits) -> "ShareClaim":
        """The caller's and circle's shares of `job` on `stream`."""
        return cls(caller_share_key(stream, job.caller_id), circle_share_key(stream, job.circle_id), limits)

    def add_command(self, stream: str, bound: int, job: Job, raw: bytes) -> tuple:
        """The `SHARED_ADD` command that adds `job`, encoded as `raw`, to `stream` within these shares."""
        deadline_ms = int(job.deadline * 1000)
        return SHARED_ADD.command(
            [stream, self.caller_key, self.circle_key],
            [bound, raw, job.run_id, deadline_ms, self.limits.per_caller, self.limits.per_circle],
        )


def refusal(reply: object) -> OverShare | None:
    """The OverShare a `SHARED_ADD` reply means, or None (an entry id, or the full stream's nil)."""
    which = REFUSALS.get(reply) if isinstance(reply, int) and not isinstance(reply, bool) else None
    return OverShare(which) if which else None
