"""The job: everything a worker needs to run one script and answer whoever asked (pure data)."""

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Job:
    """One script run to do.

    `deadline` is a Unix time: past it nobody waits for the answer, so the job is dropped
    unrun. `reply_channel` is the channel-layer name of the WebSocket consumer waiting for
    the result (empty for webhooks, whose result goes to `event_id`'s WebhookEvent).
    `event` is a webhook's verified payload, given to the script as the `EVENT` constant.
    `request_id` is the JSON-RPC id of the `play` that asked (as JSON text, for log lines).
    """

    circle_id: int
    circle_key: str
    caller_id: str
    caller_role: str
    source: str
    script: str
    deadline: float
    timeout_ms: int
    reply_channel: str = ""
    request_id: str = ""
    event_id: int | None = None
    event: dict | None = None  # webhook jobs: the typed payload, the script's EVENT constant
    job_id: str | None = None  # a JobRecord's run (issue 12): the record says how it ends
    env_vars: dict | None = None  # a JobRecord's: the script's ENV_VARS constant
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    queued_at: float = field(default_factory=time.time)

    @classmethod
    def for_timeout(cls, *, timeout_ms: int, **fields: Any) -> "Job":
        """A job whose deadline is `timeout_ms` from now."""
        return cls(deadline=time.time() + timeout_ms / 1000, timeout_ms=timeout_ms, **fields)

    def remaining_ms(self, now: float | None = None) -> int:
        """Milliseconds left before the deadline (0 or less: expired)."""
        return int((self.deadline - (time.time() if now is None else now)) * 1000)

    def encode(self) -> bytes:
        """Serialise for the queue (orjson reads the dataclass itself: ten times faster than `asdict`)."""
        return orjson.dumps(self)

    @classmethod
    def decode(cls, raw: bytes | str) -> "Job":
        """Parse what `encode` produced; raises ValueError for anything else."""
        try:
            return cls(**orjson.loads(raw))
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"not a job: {exc}") from exc
