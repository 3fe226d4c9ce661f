"""Jobs: long-running scripts on the server, and `Job`, a handle on one of them.

A job is created (`created`), started (`dispatched`, waiting for a worker or for its
prerequisites), runs (`started`) and ends `finished` or `error` (`docs/PROTOCOL.md`, "Jobs").
`Job.wait()` and `Job.follow()` are built on a `jobs` subscription opened BEFORE the job's
status is read (the read is the subscription's catch-up step, redone after every reconnect),
so a change is never missed, even one that happened while the client was disconnected.

`JobMethods` is the jobs' part of `CircleClient`: one method per call of the wire contract.
"""

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any, Protocol

from circles_client.connection import Connection
from circles_client.errors import ExecutionError
from circles_client.subscriptions import CatchUp, Subscription

TOPIC = "jobs"
FINAL_STATUSES = frozenset({"finished", "error"})
# A job's statuses only move forward; notifications and re-read states are put in this order.
STATUS_ORDER = {"created": 0, "dispatched": 1, "started": 2, "finished": 3, "error": 3}
RUN_JOB_TIMEOUT_MARGIN = 10.0  # seconds allowed on top of a job's own timeout for run_job's answer
# run_job without a timeout waits as long as the server's default cap (CIRCLES_JOBS_TIMEOUT_MAX_SECONDS)
RUN_JOB_DEFAULT_WAIT = 3600.0


class Calls(Protocol):
    """What a `Job` needs of its client (`CircleClient` is one)."""

    async def call(self, method: str, params: Any = None, *, timeout: float | None = None) -> Any: ...

    async def subscribe(
        self, topic: str, *, catch_up: CatchUp | None = None, **params: Any
    ) -> Subscription: ...


def job_params(
    script: str,
    timeout: int | None = None,
    env_vars: Mapping[str, str] | None = None,
    prerequisites: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The params of `create_job` and `run_job` (the optional ones only when given)."""
    params: dict[str, Any] = {"script": script}
    if timeout is not None:
        params["timeout"] = timeout
    if env_vars is not None:
        params["env_vars"] = dict(env_vars)
    if prerequisites is not None:
        params["prerequisites"] = list(prerequisites)
    return params


def is_final(state: Mapping[str, Any]) -> bool:
    """Whether a job object or a notification's result has a final status."""
    return state.get("status") in FINAL_STATUSES


def state_of(job: Mapping[str, Any]) -> dict[str, Any]:
    """A job object in the shape of a notification's result (`job_id`, `status`, `updated_at`, ...)."""
    state = {"job_id": job.get("id"), "status": job.get("status"), "updated_at": job.get("updated_at")}
    if is_final(job):
        state |= {key: job.get(key) for key in ("output", "value", "error")}
    return state


def failure(state: Mapping[str, Any]) -> ExecutionError:
    """The `ExecutionError` (as `run_job` or `play` raise it) for a job that ended `error`."""
    error = state.get("error") if isinstance(state.get("error"), dict) else {}
    return ExecutionError(-32000, "Execution error", dict(error), method="job")


def later(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Whether `new` moves a job forward from `old` (a started job's logs count, when still started)."""
    if old is None:
        return True
    new_rank, old_rank = STATUS_ORDER.get(new.get("status"), -1), STATUS_ORDER.get(old.get("status"), -1)
    return new_rank > old_rank or (new_rank == old_rank and not is_final(old))


class Job:
    """A handle on the job `id` of a circle, through `client`; no call is made until one is asked for."""

    def __init__(self, client: Calls, job_id: str) -> None:
        self.client = client
        self.id = job_id
        self.state: dict[str, Any] | None = None  # the latest state seen (a notification's result)

    def __repr__(self) -> str:
        status = self.state.get("status") if self.state else None
        return f"Job({self.id!r}, status={status!r})"

    def _job(self) -> dict[str, str]:
        return {"job_id": self.id}

    async def start(self) -> None:
        """`start_job`: queue it (it waits for its prerequisites first). `WrongJobState` if started."""
        await self.client.call("start_job", self._job())

    async def stop(self) -> None:
        """`stop_job`: it ends `error` with kind `stopped` (a job not started yet never runs)."""
        await self.client.call("stop_job", self._job())

    async def delete(self) -> None:
        """`delete_job` (`WrongJobState` while it runs: stop it first)."""
        await self.client.call("delete_job", self._job())

    async def status(self) -> str:
        """`get_job_status`: `created`, `dispatched`, `started`, `finished` or `error`."""
        return await self.client.call("get_job_status", self._job())

    async def get(self) -> dict[str, Any]:
        """`get_job`: the whole job object."""
        return await self.client.call("get_job", self._job())

    async def output(self) -> str:
        """`get_job_output`: the output of a finished job (`WrongJobState` before, with `.status`)."""
        return await self.client.call("get_job_output", self._job())

    async def logs(self) -> str | None:
        """`get_job_logs`: what the script printed so far (lines joined with newlines), or None."""
        return (await self.client.call("get_job_logs", self._job()))["logs"]

    async def subscribe(self) -> Subscription:
        """A `jobs` subscription to this job whose first result is the job's state read after subscribing.

        The same read follows every re-subscription after a reconnect. Raises `JobNotFound`.
        """
        return await self.client.subscribe(TOPIC, catch_up=self._catch_up, job_id=self.id)

    async def _catch_up(self, connection: Connection) -> dict[str, Any]:
        return state_of(await connection.request("get_job", self._job()))

    async def follow(self, *, start: bool = False) -> AsyncIterator[dict[str, Any]]:
        """The job's states as they change, the last one final; with `start`, started once subscribed.

        Each is a notification's result: `job_id`, `status`, `updated_at`, the new `logs` lines
        while it runs, `output`, `value`, `error` once final. States that do not move the job
        forward (a re-read after a reconnect that saw nothing new) are left out.
        """
        subscription = await self.subscribe()
        try:
            if start:
                await self.start()
            async for state in subscription:
                if not later(state, self.state):
                    continue
                self.state = state
                yield state
                if is_final(state):
                    return
        finally:
            await subscription.close()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self.follow()

    async def wait(self, *, start: bool = False) -> dict[str, Any]:
        """Wait for a final status and return that state (`status`, `output`, `value`, `error`).

        Not a polling loop: one subscription, then the notifications. With `start`, the job is
        started once the subscription is in place. Bound it with `asyncio.timeout` if need be.
        """
        async with aclosing(self.follow(start=start)) as states:
            async for state in states:
                if is_final(state):
                    return state
        raise AssertionError("a job's notifications end with a final status")

    async def result(self, *, start: bool = False) -> str:
        """`wait()`, then the output of a finished job; a failed one raises its `ExecutionError`."""
        state = await self.wait(start=start)
        if state["status"] != "finished":
            raise failure(state)
        return state.get("output")


class JobMethods:
    """The job calls of a client; the class using it provides `call` and `subscribe` (`Calls`)."""

    def job(self: Calls, job_id: str) -> Job:
        """A handle on an existing job (no call is made)."""
        return Job(self, job_id)

    async def create_job(
        self: Calls,
        script: str,
        timeout: int | None = None,
        env_vars: Mapping[str, str] | None = None,
        prerequisites: Sequence[str] | None = None,
    ) -> Job:
        """`create_job`: a new job, `created` and not started; `timeout` in seconds (the server caps it).

        `env_vars` are the script's read-only `ENV_VARS`; `prerequisites` job ids (or `Job`s) of the
        caller's that must finish first.
        """
        prerequisites = [getattr(p, "id", p) for p in prerequisites] if prerequisites is not None else None
        job_id = await self.call("create_job", job_params(script, timeout, env_vars, prerequisites))
        return Job(self, job_id)

    async def start_job(self: Calls, job_id: str) -> dict[str, Any]:
        """`start_job`: `{"success": true}`; `WrongJobState` if it was started already."""
        return await self.call("start_job", {"job_id": job_id})

    async def run_job(
        self: Calls,
        script: str,
        timeout: int | None = None,
        env_vars: Mapping[str, str] | None = None,
        prerequisites: Sequence[str] | None = None,
    ) -> str:
        """`run_job`: create and start a job and answer its output once finished.

        A failed job raises `ExecutionError` as `play` does. The answer is awaited for the job's
        timeout (the server's cap when none is given) and a margin.
        """
        wait = (timeout if timeout is not None else RUN_JOB_DEFAULT_WAIT) + RUN_JOB_TIMEOUT_MARGIN
        params = job_params(script, timeout, env_vars, prerequisites)
        return await self.call("run_job", params, timeout=wait)

    async def get_job(self: Calls, job_id: str) -> dict[str, Any]:
        """`get_job`: the job object; `JobNotFound` for an unknown job or another caller's."""
        return await self.call("get_job", {"job_id": job_id})

    async def get_job_status(self: Calls, job_id: str) -> str:
        """`get_job_status`: the status string."""
        return await self.call("get_job_status", {"job_id": job_id})

    async def get_job_output(self: Calls, job_id: str) -> str:
        """`get_job_output`: a finished job's output; `WrongJobState` (with `.status`) otherwise."""
        return await self.call("get_job_output", {"job_id": job_id})

    async def get_job_logs(self: Calls, job_id: str) -> str | None:
        """`get_job_logs`: what the job printed so far, lines joined with newlines (None: nothing)."""
        return (await self.call("get_job_logs", {"job_id": job_id}))["logs"]

    async def list_jobs(
        self: Calls,
        status: str | None = None,
        limit: int | None = None,
        before: str | None = None,
        all_jobs: bool = False,
    ) -> list[dict[str, Any]]:
        """`list_jobs`: job objects, newest first; `before` a job id (the page after it);
        `all_jobs` (the wire's `all`): every caller's, owner and admins only (else `Forbidden`)."""
        params: dict[str, Any] = {}
        if status is not None:
            params["status"] = status
        if limit is not None:
            params["limit"] = limit
        if before is not None:
            params["before"] = before
        if all_jobs:
            params["all"] = True
        return await self.call("list_jobs", params)

    async def stop_job(self: Calls, job_id: str) -> dict[str, Any]:
        """`stop_job`: `{"success": true}`."""
        return await self.call("stop_job", {"job_id": job_id})

    async def delete_job(self: Calls, job_id: str) -> dict[str, Any]:
        """`delete_job`: `{"success": true}`; `WrongJobState` for a running job."""
        return await self.call("delete_job", {"job_id": job_id})

    async def clear_all_jobs(self: Calls) -> int:
        """`clear_all_jobs`: deletes the caller's jobs that are not running (owner/admin: the
        circle's); returns how many."""
        return (await self.call("clear_all_jobs"))["deleted"]
