"""The jobs' RPC methods and the "jobs" subscription topic (docs/PROTOCOL.md, "Jobs").

Each method needs what `play` needs (signed in; a member, an admin, the owner, or a guest
where the circle allows guests). The lifecycle lives in `executor.job_store`; here params
are bound, store errors become their codes (-32004, -32005, -32029, -32602), and a change is
settled after its commit: released jobs handed to the executor, events published to the
circle's group. `run_job` waits for the job's final status through the same events a
subscription gets, not by polling.
"""

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from django.conf import settings

from circles import jsonrpc
from circles.job_db import job_db
from circles.jsonrpc import RpcError
from circles.methods import check_player, rpc_method
from circles.registry import Param
from circles.roles import Role
from circles.session import CircleSession
from circles.standing import ReaderGate
from circles.subscriptions import Notice, Topic, register_topic
from executor import job_store
from executor.job_dispatch import interrupt
from executor.job_dispatch import settle as settle_now
from executor.job_events import (
    ALL_JOBS_ROUTE,
    TOPIC,
    bind_loop,
    caller_route,
    group_name,
    job_object,
    job_route,
)
from executor.job_rules import (
    FINAL,
    FINISHED,
    STATUSES,
    InvalidJobParams,
    JobLimits,
    JobNotFound,
    TooManyActiveJobs,
    WrongJobState,
    check_spec,
)
from executor.job_store import Change, Viewer
from executor.models import JobRecord

# How long `run_job` waits past the job's timeout (queue and prerequisites) before it reads the row.
RUN_JOB_GRACE_SECONDS = 60.0
_JOB_ID = Param("job_id", "string", "a job id (UUID text)", max_length=64)
_JOB_ERRORS = (
    jsonrpc.INVALID_PARAMS,
    jsonrpc.AUTHENTICATION_REQUIRED,
    jsonrpc.FORBIDDEN,
    jsonrpc.JOB_NOT_FOUND,
)
_CREATE_PARAMS = (
    Param("script", "string", "Rhai source"),
    Param("timeout", "integer", "seconds (default and cap: server settings)", required=False),
    Param("env_vars", "object", "string -> string, the script's ENV_VARS", required=False),
    Param("prerequisites", "array", "ids of your jobs that must finish first", required=False),
)
_SUCCESS = {"type": "object", "properties": {"success": {"type": "boolean"}}}
_JOB_OBJECT = {"type": "object"}
db = job_db


@contextlib.contextmanager
def job_errors() -> Iterator[None]:
    """Turn the store's errors into their JSON-RPC errors."""
    try:
        yield
    except JobNotFound as exc:
        raise RpcError(jsonrpc.JOB_NOT_FOUND, data={"job_id": exc.job_id[:64]}) from None
    except WrongJobState as exc:
        raise RpcError(jsonrpc.WRONG_JOB_STATE, data={"status": exc.status}) from None
    except TooManyActiveJobs:
        raise RpcError(jsonrpc.RATE_LIMITED, data={"reason": "too many active jobs for this key"}) from None
    except InvalidJobParams as exc:
        raise RpcError(
            jsonrpc.INVALID_PARAMS, data={"field": exc.field, "reason": exc.reason}, detail=str(exc)
        ) from None


async def viewer_of(session: CircleSession) -> Viewer:
    """The caller as the store sees it, after the check `play` makes (-32001, -32003)."""
    await check_player(session)
    pubkey, current = session.pubkey, session.role
    assert pubkey is not None  # check_player refuses a signed-out session
    if current is None:  # signed in without a role: refused by the check above
        raise RpcError(jsonrpc.FORBIDDEN, data={"role": None, "needs": "member"})
    return Viewer(session.circle.id, pubkey, str(current), sees_all=current.at_least(Role.ADMIN))


def own_only(viewer: Viewer) -> Viewer:
    """`viewer` limited to its own jobs (lists and subscriptions without `all`)."""
    return Viewer(viewer.circle_id, viewer.caller_id, viewer.caller_role, sees_all=False)


async def wanting_all(session: CircleSession, want_all: bool | None) -> Viewer:
    """The viewer of a call with `all`: every job for the owner or an admin, -32003 for anyone else."""
    viewer = await viewer_of(session)
    if not want_all:
        return own_only(viewer)
    if not viewer.sees_all:
        raise RpcError(jsonrpc.FORBIDDEN, data={"role": viewer.caller_role, "needs": "admin"})
    return viewer


def bind_events_loop() -> None:
    """Embedded mode: the job threads (and `settle_now` on a database thread) publish through
    the running loop, the in-memory layer's."""
    if not settings.REDIS_URL:
        bind_loop(asyncio.get_running_loop())


async def settle(change: Change, circle_key: str) -> None:
    """After the commit: `executor.job_dispatch.settle` on a database thread (the events
    published, then the released jobs handed over and the ends of those refused published;
    `circle_key` is the change's circle's)."""
    bind_events_loop()
    await db(settle_now)(change, circle_key=circle_key)


async def create(session: CircleSession, script: Any, timeout: Any, env_vars: Any, prerequisites: Any) -> Any:
    """Check the params and store a `created` job; (viewer, record)."""
    viewer = await viewer_of(session)
    with job_errors():
        spec = check_spec(script, timeout, env_vars, prerequisites, JobLimits.from_settings())
        record = await db(job_store.create)(viewer, spec)
    return viewer, record


@rpc_method(
    "create_job",
    "Create a job (not started): its id.",
    params=_CREATE_PARAMS,
    result={"type": "string"},
    errors=_JOB_ERRORS,
)
async def create_job(
    session: CircleSession, script: str, timeout: int | None = None, env_vars: dict | None = None,
    prerequisites: list | None = None,
) -> str:  # fmt: skip
    _, record = await create(session, script, timeout, env_vars, prerequisites)
    return str(record.id)


def start_and_settle(viewer: Viewer, job_id: str, limits: JobLimits, circle_key: str) -> Change:
    """`job_store.start`, then its settling (`executor.job_dispatch.settle`: the events published,
    the run handed over), on the one database thread hop: `start_job`'s whole server side."""
    change = job_store.start(viewer, job_id, limits)
    settle_now(change, circle_key=circle_key)
    return change


async def start(session: CircleSession, viewer: Viewer, job_id: str) -> Change:
    bind_events_loop()
    limits, circle_key = JobLimits.from_settings(), session.circle.public_key
    with job_errors():
        return await db(start_and_settle)(viewer, job_id, limits, circle_key)


@rpc_method(
    "start_job",
    "Start a created job: it runs once its prerequisites finished.",
    params=(_JOB_ID,),
    result=_SUCCESS,
    errors=(*_JOB_ERRORS, jsonrpc.WRONG_JOB_STATE, jsonrpc.RATE_LIMITED),
)
async def start_job(session: CircleSession, job_id: str) -> dict[str, bool]:
    await start(session, await viewer_of(session), job_id)
    return {"success": True}


@rpc_method(
    "run_job",
    "Create and start a job, and answer its output once it finished (a failed job: -32000).",
    params=_CREATE_PARAMS,
    result={"type": "string"},
    errors=(*_JOB_ERRORS, jsonrpc.EXECUTION_ERROR, jsonrpc.RATE_LIMITED),
)
async def run_job(
    session: CircleSession, script: str, timeout: int | None = None, env_vars: dict | None = None,
    prerequisites: list | None = None,
) -> str:  # fmt: skip
    viewer, record = await create(session, script, timeout, env_vars, prerequisites)
    job_id = str(record.id)
    final: asyncio.Future = asyncio.get_running_loop().create_future()

    def heard(event: dict[str, Any]) -> None:
        if event["job_id"] == job_id and event["status"] in FINAL and not final.done():
            final.set_result(event)

    stop_listening = await session.subscriptions.listen(TOPIC, session, heard, job_route(job_id))
    try:
        change = await start(session, viewer, job_id)
        for _, event in change.events:
            heard(event)
        try:
            event = await asyncio.wait_for(final, record.timeout_seconds + RUN_JOB_GRACE_SECONDS)
        except TimeoutError:
            with job_errors():
                current = await db(job_store.get)(viewer, job_id)
            if current.status not in FINAL:
                message = f"job {job_id} is still {current.status}"
                data = {"kind": "timeout", "message": message, "line": None, "column": None}
                raise RpcError(jsonrpc.EXECUTION_ERROR, data=data) from None
            event = {"status": current.status, "output": current.output, "error": current.error}
    finally:
        stop_listening()
    if event["status"] == FINISHED:
        return event["output"]
    raise RpcError(jsonrpc.EXECUTION_ERROR, data=event["error"])


async def visible(session: CircleSession, job_id: str) -> JobRecord:
    viewer = await viewer_of(session)
    with job_errors():
        return await db(job_store.get)(viewer, job_id)


@rpc_method(
    "get_job_status",
    "A job's status.",
    params=(_JOB_ID,),
    result={"type": "string", "enum": list(STATUSES)},
    errors=_JOB_ERRORS,
)
async def get_job_status(session: CircleSession, job_id: str) -> str:
    return (await visible(session, job_id)).status


@rpc_method(
    "get_job_output",
    "The output of a finished job (else -32005 with its status).",
    params=(_JOB_ID,),
    result={"type": "string"},
    errors=(*_JOB_ERRORS, jsonrpc.WRONG_JOB_STATE),
)
async def get_job_output(session: CircleSession, job_id: str) -> str:
    record = await visible(session, job_id)
    if record.status != FINISHED:
        raise RpcError(jsonrpc.WRONG_JOB_STATE, data={"status": record.status})
    return record.output or ""


@rpc_method(
    "get_job_logs",
    "What a job's script printed (lines joined with newlines), or null before it ended.",
    params=(_JOB_ID,),
    result={"type": "object", "properties": {"logs": {"type": ["string", "null"]}}},
    errors=_JOB_ERRORS,
)
async def get_job_logs(session: CircleSession, job_id: str) -> dict[str, str | None]:
    return {"logs": (await visible(session, job_id)).logs}


@rpc_method("get_job", "The job object.", params=(_JOB_ID,), result=_JOB_OBJECT, errors=_JOB_ERRORS)
async def get_job(session: CircleSession, job_id: str) -> dict[str, Any]:
    return job_object(await visible(session, job_id), session.circle.public_key)


@rpc_method(
    "list_jobs",
    "Your jobs (all: the circle's, owner and admins), newest first.",
    params=(
        Param("status", "string", "only jobs in this status", required=False, max_length=16),
        Param("limit", "integer", "at most this many (default 50, capped at 200)", required=False, minimum=1),
        Param("before", "string", "a job id: only jobs created before it", required=False, max_length=64),
        Param("all", "boolean", "every job of the circle (owner and admins)", required=False),
    ),
    result={"type": "array", "items": _JOB_OBJECT},
    errors=_JOB_ERRORS,
)
async def list_jobs(
    session: CircleSession, status: str | None = None, limit: int | None = None, before: str | None = None,
    all: bool | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    viewer = await wanting_all(session, all)
    if status is not None and status not in STATUSES:
        raise RpcError(jsonrpc.INVALID_PARAMS, data={"field": "status", "reason": f"one of {list(STATUSES)}"})
    with job_errors():
        records = await db(job_store.list_jobs)(viewer, status=status, limit=limit, before=before)
    return [job_object(record, session.circle.public_key) for record in records]


@rpc_method(
    "stop_job",
    "Stop a job: it ends `error` kind `stopped` (one not yet started never runs).",
    params=(_JOB_ID,),
    result=_SUCCESS,
    errors=(*_JOB_ERRORS, jsonrpc.WRONG_JOB_STATE),
)
async def stop_job(session: CircleSession, job_id: str) -> dict[str, bool]:
    viewer = await viewer_of(session)
    with job_errors():
        _, run_id = await db(job_store.running_run)(viewer, job_id)
        if run_id is not None:  # interrupt first: embedded, a run holding SQLite's write lock lets go
            await db(interrupt)(run_id)
        stopped = await db(job_store.stop)(viewer, job_id)
    if stopped.run_id is not None:  # it started while we looked: interrupt it now
        await db(interrupt)(stopped.run_id)
    await settle(stopped.change, session.circle.public_key)
    return {"success": True}


@rpc_method(
    "delete_job",
    "Delete a job that is not dispatched or started.",
    params=(_JOB_ID,),
    result=_SUCCESS,
    errors=(*_JOB_ERRORS, jsonrpc.WRONG_JOB_STATE),
)
async def delete_job(session: CircleSession, job_id: str) -> dict[str, bool]:
    viewer = await viewer_of(session)
    with job_errors():
        change = await db(job_store.delete)(viewer, job_id)
    await settle(change, session.circle.public_key)
    return {"success": True}


@rpc_method(
    "clear_all_jobs",
    "Delete your jobs that are not dispatched or started (owner and admins: the circle's).",
    result={"type": "object", "properties": {"deleted": {"type": "integer"}}},
    errors=(jsonrpc.AUTHENTICATION_REQUIRED, jsonrpc.FORBIDDEN),
)
async def clear_all_jobs(session: CircleSession) -> dict[str, int]:
    viewer = await viewer_of(session)
    deleted, change = await db(job_store.clear)(viewer)
    await settle(change, session.circle.public_key)
    return {"deleted": deleted}


def job_filter(viewer: Viewer, job_id: str | None) -> Any:
    """The filter of a "jobs" subscription: one job, the viewer's jobs, or (sees all) the circle's."""

    def matches(event: dict[str, Any]) -> Notice | None:
        if job_id is not None:
            if event["job_id"] != job_id:
                return None
        elif not viewer.sees_all and event["caller_id"] != viewer.caller_id:
            return None
        return Notice(event["job_id"], event["revision"], event)

    return matches


async def jobs_viewer(session: CircleSession, params: dict[str, Any]) -> tuple[Viewer, str | None]:
    """The viewer and job id of a "jobs" subscription's params, checked: `job_id` (visible to the
    caller) or `all` (owner, admin); raises the refusal."""
    job_id, want_all = params.get("job_id"), params.get("all")
    if job_id is not None:
        viewer = await viewer_of(session)
        with job_errors():
            record = await db(job_store.get)(viewer, job_id)
        return viewer, str(record.id)
    return await wanting_all(session, want_all), None


class JobsFilter:
    """A "jobs" subscription's filter that re-reads its caller's standing as a records one does
    (`circles.standing.ReaderGate`): after a membership change of the circle, the next event
    waits until the subscribe's checks pass again (`circles.subscriptions.GatedFilter`); an admin
    demoted to a member loses an `all` subscription, a removed member every one."""

    def __init__(self, session: CircleSession, params: dict[str, Any], viewer: Viewer, job_id: str | None):
        self.session, self.params = session, params
        self.gate = ReaderGate(session)
        self.matches = job_filter(viewer, job_id)
        # The events the process's hub hands this subscription (`circles.event_hub`): one job's,
        # or the caller's own, or (an owner's or admin's `all`) every job's of the circle.
        if job_id is not None:
            self.route = job_route(job_id)
        else:
            self.route = ALL_JOBS_ROUTE if viewer.sees_all else caller_route(viewer.caller_id)

    def __call__(self, event: dict[str, Any]) -> Notice | None:
        return self.matches(event)

    def trusted(self) -> bool:
        """Whether the standing read last still holds."""
        return self.gate.trusted()

    async def recheck(self) -> RpcError | None:
        """The subscribe's checks again: None (and the filter follows the new role), else the refusal."""
        error = await self.gate.recheck()
        if error is not None:
            return error
        try:
            viewer, job_id = await jobs_viewer(self.session, self.params)
        except RpcError as refusal:
            return refusal
        self.matches = job_filter(viewer, job_id)
        return None


async def open_jobs(session: CircleSession, params: dict[str, Any]) -> Any:
    """Check a "jobs" subscription's params: `job_id` (visible to the caller) or `all` (owner, admin)."""
    viewer, job_id = await jobs_viewer(session, params)
    return JobsFilter(session, params, viewer, job_id)


register_topic(
    Topic(
        TOPIC,
        group=lambda session: group_name(session.circle.id),
        open=open_jobs,
        params=frozenset({"job_id", "all"}),
    )
)
