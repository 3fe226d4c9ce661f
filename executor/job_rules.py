"""The rules of a job's parameters and lifecycle, and the errors they raise (pure logic).

`executor.job_store` applies them to rows; the WebSocket face (`circles.job_methods`) maps
each error to its JSON-RPC code: `JobNotFound` -32004, `WrongJobState` -32005,
`TooManyActiveJobs` -32029, `InvalidJobParams` -32602.
"""

import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings

CREATED, DISPATCHED, STARTED, FINISHED, ERROR = "created", "dispatched", "started", "finished", "error"
FINAL = frozenset({FINISHED, ERROR})
ACTIVE = frozenset({DISPATCHED, STARTED})
STATUSES = (CREATED, DISPATCHED, STARTED, FINISHED, ERROR)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
LOGS_CUT = "\n[logs truncated at {limit} bytes]"


class JobError(Exception):
    """A job call refused."""


class JobNotFound(JobError):
    """No such job, or another caller's (which must look the same)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class WrongJobState(JobError):
    """The job's status does not allow the call (start of a started job, output of an unfinished one)."""

    def __init__(self, status: str) -> None:
        super().__init__(f"job is {status}")
        self.status = status


class TooManyActiveJobs(JobError):
    """The caller has its maximum of dispatched or started jobs."""


class InvalidJobParams(JobError):
    """A parameter out of its bounds: `field` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class JobLimits:
    """The `CIRCLES_JOBS_*` bounds."""

    timeout_default_seconds: int = 300
    timeout_max_seconds: int = 3600
    max_script_bytes: int = 64 * 1024
    max_env_vars: int = 32
    max_env_value_bytes: int = 4096
    max_prerequisites: int = 16
    max_active_per_caller: int = 8
    max_log_bytes: int = 1024 * 1024

    @classmethod
    def from_settings(cls) -> "JobLimits":
        """The bounds the settings give."""
        return cls(
            timeout_default_seconds=settings.CIRCLES_JOBS_TIMEOUT_DEFAULT_SECONDS,
            timeout_max_seconds=settings.CIRCLES_JOBS_TIMEOUT_MAX_SECONDS,
            max_script_bytes=settings.CIRCLES_JOBS_MAX_SCRIPT_BYTES,
            max_env_vars=settings.CIRCLES_JOBS_MAX_ENV_VARS,
            max_env_value_bytes=settings.CIRCLES_JOBS_MAX_ENV_VALUE_BYTES,
            max_prerequisites=settings.CIRCLES_JOBS_MAX_PREREQUISITES,
            max_active_per_caller=settings.CIRCLES_JOBS_MAX_ACTIVE_PER_CALLER,
            max_log_bytes=settings.CIRCLES_JOBS_MAX_LOG_BYTES,
        )


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job's parameters, checked: what `create_job` stores."""

    script: str
    timeout_seconds: int
    env_vars: dict[str, str]
    prerequisites: tuple[str, ...]


def check_timeout(timeout: Any, limits: JobLimits) -> int:
    """The timeout in seconds (the default when None); InvalidJobParams out of 1..max."""
    if timeout is None:
        return limits.timeout_default_seconds
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        raise InvalidJobParams("timeout", "must be an integer number of seconds")
    if not 1 <= timeout <= limits.timeout_max_seconds:
        raise InvalidJobParams("timeout", f"must be between 1 and {limits.timeout_max_seconds} seconds")
    return timeout


def check_env_vars(env_vars: Any, limits: JobLimits) -> dict[str, str]:
    """`env_vars` as given; InvalidJobParams for a bad name, a value not a string or too long, too many."""
    if env_vars is None:
        return {}
    if not isinstance(env_vars, dict):
        raise InvalidJobParams("env_vars", "must be an object of string to string")
    if len(env_vars) > limits.max_env_vars:
        raise InvalidJobParams("env_vars", f"more than {limits.max_env_vars} names")
    for name, value in env_vars.items():
        if not ENV_NAME.match(name):
            raise InvalidJobParams("env_vars", f"name {name[:70]!r} is not [A-Za-z_][A-Za-z0-9_]{{0,63}}")
        if not isinstance(value, str):
            raise InvalidJobParams("env_vars", f"value of {name} is not a string")
        if len(value.encode()) > limits.max_env_value_bytes:
            raise InvalidJobParams(
                "env_vars", f"value of {name} is longer than {limits.max_env_value_bytes} bytes"
            )
        if "\x00" in value:  # PostgreSQL's jsonb cannot hold it
            raise InvalidJobParams("env_vars", f"value of {name} contains the NUL character")
    return dict(env_vars)


def check_prerequisites(prerequisites: Any, limits: JobLimits) -> tuple[str, ...]:
    """The prerequisite ids, deduplicated in order; InvalidJobParams for too many or not ids."""
    if prerequisites is None:
        return ()
    if not isinstance(prerequisites, list) or not all(isinstance(item, str) for item in prerequisites):
        raise InvalidJobParams("prerequisites", "must be an array of job ids")
    unique = tuple(dict.fromkeys(prerequisites))
    if len(unique) > limits.max_prerequisites:
        raise InvalidJobParams("prerequisites", f"more than {limits.max_prerequisites} jobs")
    for job_id in unique:
        if parse_job_id(job_id) is None:
            raise InvalidJobParams("prerequisites", f"{job_id[:40]!r} is not a job id")
    return unique


def check_spec(script: Any, timeout: Any, env_vars: Any, prerequisites: Any, limits: JobLimits) -> JobSpec:
    """Every parameter of `create_job` checked (InvalidJobParams naming the first that is out)."""
    if not isinstance(script, str):
        raise InvalidJobParams("script", "must be a string")
    if len(script.encode()) > limits.max_script_bytes:
        raise InvalidJobParams("script", f"longer than {limits.max_script_bytes} bytes")
    if "\x00" in script:  # PostgreSQL's text cannot hold it
        raise InvalidJobParams("script", "must not contain the NUL character")
    return JobSpec(
        script=script,
        timeout_seconds=check_timeout(timeout, limits),
        env_vars=check_env_vars(env_vars, limits),
        prerequisites=check_prerequisites(prerequisites, limits),
    )


def parse_job_id(text: Any) -> str | None:
    """`text` as a canonical UUID string, or None when it is not one."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def joined_logs(lines: list[str], max_bytes: int) -> str:
    """The printed lines joined with newlines, cut at `max_bytes` with a marker."""
    text = "\n".join(lines)
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode(errors="ignore") + LOGS_CUT.format(limit=max_bytes)


def prerequisite_failed(job_id: str) -> dict[str, Any]:
    """The error of a job whose prerequisite `job_id` ended in error (or was deleted)."""
    return {
        "kind": "prerequisite",
        "message": f"prerequisite job {job_id} did not finish",
        "line": None,
        "column": None,
    }


def stopped_error() -> dict[str, Any]:
    """The error of a stopped job."""
    return {"kind": "stopped", "message": "the job was stopped", "line": None, "column": None}
