"""The job queue on a Redis Stream with a consumer group (design doc, section 5).

Producers add with a bounded length (a full queue refuses, it never trims unrun jobs);
workers read with XREADGROUP, acknowledge *and delete* after the result is delivered (so
the stream length is the work outstanding), claim jobs a dead worker left pending with
XAUTOCLAIM, and move a job delivered too often to the dead-letter stream.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict, cast

import redis
from django.conf import settings

from executor.held_connection import HeldConnection
from executor.job_shares import JOB_ADD, PROMOTE_WAITING, JobShareLimits, add_args
from executor.jobs import Job
from executor.lua import LuaScript
from executor.redis_clients import sync_client

Publication = tuple[str, bytes]  # (pub/sub channel, payload): a job's answer, sent with its acknowledgement

# Check-and-add in one step so concurrent producers cannot overshoot the bound.
# KEYS: stream. ARGV: bound, job. Returns the entry id; false when the stream is full.
BOUNDED_ADD = LuaScript("""
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
""")
# The end of every job, in one step like MULTI/EXEC and in one command: copy it to the
# dead-letter stream (when it is given up), answer (when someone waits), give the run's place
# in its caller's and circle's shares back (executor/shares.py: the entry names them),
# acknowledge and delete; a job run's entry also names its circle's waiting list, whose first
# runs with room then go on the stream (executor/job_shares.py).
# The run's record changes (executor.change_feed) are published here too, before the answer,
# so a worker pays one round trip per job, not two, and a watcher hears a change no later than
# its writer hears the answer.
# KEYS: stream, dead-letter stream. ARGV: group, entry id; the channel and payload to publish
# ('': nothing); the dead-letter reason and the job as queued ('': not dead-lettered); then
# channel, payload of each change to publish (none: nothing more).
FINISH = LuaScript(
    """
if ARGV[5] ~= '' then
    redis.call('XADD', KEYS[2], '*', 'job', ARGV[6], 'reason', ARGV[5], 'entry', ARGV[2])
end
for i = 7, #ARGV - 1, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
local stream, waiting, circle_share, per_caller_text, per_circle_text = KEYS[1], nil, nil, nil, nil
if entry then
    local fields, run = entry[2], nil
    for i = 1, #fields, 2 do
        local name, value = fields[i], fields[i + 1]
        if name == 'run' then run = value
        elseif name == 'circle_share' then circle_share = value
        elseif name == 'waiting' then waiting = value
        elseif name == 'per_caller' then per_caller_text = value
        elseif name == 'per_circle' then per_circle_text = value end
    end
    for i = 1, #fields, 2 do
        if run and (fields[i] == 'caller_share' or fields[i] == 'circle_share') then
            redis.call('ZREM', fields[i + 1], run)
        end
    end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
local deleted = redis.call('XDEL', KEYS[1], ARGV[2])
"""
    + PROMOTE_WAITING
    + """
return deleted
"""
)
NOTHING = ("", b"")  # FINISH's arguments for no publication, or for no dead letter


class QueueUnavailable(Exception):
    """Redis cannot be reached: the job was not queued."""


class QueueFull(Exception):
    """The stream holds its maximum of outstanding jobs: the job was not queued."""


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """Names and bounds of the queue (the `CIRCLES_QUEUE_*` settings)."""

    url: str
    stream: str = "circles:jobs"
    group: str = "workers"
    dead_stream: str = "circles:jobs:dead"
    max_length: int = 10_000
    claim_idle_ms: int = 30_000
    max_deliveries: int = 2

    @classmethod
    def from_settings(cls) -> "QueueConfig":
        """The queue the settings describe."""
        return cls(
            url=settings.REDIS_URL,
            stream=settings.CIRCLES_QUEUE_STREAM,
            group=settings.CIRCLES_QUEUE_GROUP,
            dead_stream=settings.CIRCLES_QUEUE_STREAM + ":dead",
            max_length=settings.CIRCLES_QUEUE_MAX_LENGTH,
            claim_idle_ms=settings.CIRCLES_QUEUE_CLAIM_IDLE_MS,
            max_deliveries=settings.CIRCLES_QUEUE_MAX_DELIVERIES,
        )


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A job as a worker received it: its stream entry id, the job, and how often it was delivered."""

    entry_id: str
    job: Job | None  # None when the entry could not be decoded
    raw: bytes
    deliveries: int = 1


class _PendingEntry(TypedDict):
    """One XPENDING entry as the queue's client (bytes replies) returns it."""

    message_id: bytes
    times_delivered: int


def _decode_entry(
    entry_id: bytes, fields: dict[bytes, bytes] | list[bytes], deliveries: int = 1
) -> QueuedJob:
    if isinstance(fields, list):  # a raw reply (HeldConnection): [name, value, name, value, ...]
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    raw = fields.get(b"job", b"")
    try:
        job = Job.decode(raw)
    except ValueError:
        job = None
    return QueuedJob(entry_id.decode(), job, raw, deliveries)


class JobQueue:
    """The worker's (synchronous) side of the queue, and a producer for tests and commands."""

    def __init__(self, config: QueueConfig, client: redis.Redis | None = None) -> None:
        self.config = config
        self.redis = client or sync_client(config.url, timeout=10, connect_timeout=2)
        # Reads and acknowledgements (the worker's thread): once per job, kept lean.
        self.connection = HeldConnection(self.redis)

    def ensure_group(self) -> None:
        """Create the stream and consumer group if missing (from id 0: no job added before is missed)."""
        try:
            self.redis.xgroup_create(self.config.stream, self.config.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def enqueue(self, job: Job) -> str:
        """Add `job`; raises QueueFull or QueueUnavailable."""
        try:
            # On the client's pool, not the held connection: producers may add from many threads.
            entry_id = BOUNDED_ADD.run(
                self.redis.execute_command, [self.config.stream], [self.config.max_length, job.encode()]
            )
        except redis.RedisError as exc:  # down, timed out, or an error reply: not queued either way
            raise QueueUnavailable(str(exc)) from exc
        if not entry_id:
            raise QueueFull(f"{self.config.max_length} jobs outstanding")
        return entry_id.decode()

    def enqueue_job_run(
        self, job: Job, limits: JobShareLimits, publications: Sequence[Publication] = ()
    ) -> str | None:
        """Add job run `job` within its caller's and circle's shares: the entry id, or None when it
        waits for a place (it goes on the stream once one frees); raises QueueFull or QueueUnavailable.

        `publications` are sent first, in the same command: the events of the change that
        released the run (`executor.job_dispatch.settle`), whether or not the run then fits."""
        keys, args = add_args(self.config.stream, self.config.max_length, job, limits, publications)
        try:
            reply = JOB_ADD.run(self.redis.execute_command, keys, args)
        except redis.RedisError as exc:
            raise QueueUnavailable(str(exc)) from exc
        if reply is None:
            raise QueueFull(f"{self.config.max_length} jobs outstanding")
        if isinstance(reply, int):
            return None
        return reply.decode()

    def read(self, consumer: str, *, count: int = 1, block_ms: int = 1000) -> list[QueuedJob]:
        """New jobs for `consumer`, waiting up to `block_ms` for one."""
        reply = self.connection.call(
            "XREADGROUP", "GROUP", self.config.group, consumer, "COUNT", count, "BLOCK", block_ms,
            "STREAMS", self.config.stream, ">",
        )  # fmt: skip
        streams = reply.values() if isinstance(reply, dict) else [entries for _, entries in reply or []]
        return [_decode_entry(entry_id, fields) for entries in streams for entry_id, fields in entries]

    def claim_stale(self, consumer: str, *, count: int = 10) -> list[QueuedJob]:
        """Jobs pending longer than the idle timeout (their worker died), now owned by `consumer`."""
        _, claimed, _ = self.redis.xautoclaim(
            self.config.stream, self.config.group, consumer, self.config.claim_idle_ms, "0-0", count=count
        )
        if not claimed:
            return []
        # redis-py types the reply for either `decode_responses`; this client's replies are bytes.
        pending = cast(
            "list[_PendingEntry]",
            self.redis.xpending_range(
                self.config.stream,
                self.config.group,
                min=claimed[0][0],
                max=claimed[-1][0],
                count=len(claimed),
                consumername=consumer,  # just claimed: other workers' entries in that range are not ours
            ),
        )
        counts = {item["message_id"].decode(): item["times_delivered"] for item in pending}
        return [
            _decode_entry(entry_id, fields, counts.get(entry_id.decode(), 2))  # claimed: delivered before
            for entry_id, fields in claimed
            if fields is not None  # deleted while pending
        ]

    def finish(
        self, entry_id: str, publication: Publication | None = None, changes: Sequence[Publication] = ()
    ) -> None:
        """Publish the run's `changes` and the job's answer (if given), then acknowledge and delete
        the job, in one step.

        A Lua script makes them atomic and one command: a worker that dies before it leaves the
        job pending (to be claimed and run again), never answered-but-queued or
        acknowledged-but-unanswered.
        """
        self._finish(entry_id, publication, dead_letter=NOTHING, changes=changes)

    def dead_letter(self, queued: QueuedJob, reason: str, publication: Publication | None = None) -> None:
        """Move a job to the dead-letter stream (kept for operators) and off the queue, in one step.

        `publication` is the failure to publish to whoever waits for the job.
        """
        self._finish(queued.entry_id, publication, dead_letter=(reason, queued.raw))

    def _finish(
        self,
        entry_id: str,
        publication: Publication | None,
        dead_letter: tuple[str, bytes],
        changes: Sequence[Publication] = (),
    ) -> None:
        keys = [self.config.stream, self.config.dead_stream]
        args = [self.config.group, entry_id, *(publication or NOTHING), *dead_letter]
        for channel, payload in changes:
            args += (channel, payload)
        FINISH.run(self.connection.call, keys, args)

    def length(self) -> int:
        """Jobs outstanding (queued or being run)."""
        return self.redis.xlen(self.config.stream)

    def pending(self) -> int:
        """Jobs delivered to a worker and not yet acknowledged."""
        try:
            return self.redis.xpending(self.config.stream, self.config.group)["pending"]
        except redis.ResponseError:
            return 0

    def oldest_age_seconds(self) -> float:
        """Seconds since the oldest outstanding job was added (by Redis's clock; 0 when none is)."""
        first = self.redis.xrange(self.config.stream, count=1)
        if not first:
            return 0.0
        entry_id = cast(bytes, first[0][0])  # redis-py allows str (decode_responses) and None: bytes here
        added_ms = int(entry_id.split(b"-")[0])
        seconds, micros = self.redis.time()
        return max(0.0, seconds + micros / 1e6 - added_ms / 1000)

    def dead_length(self) -> int:
        """Jobs in the dead-letter stream."""
        return self.redis.xlen(self.config.dead_stream)
