"""An in-process WebSocket server speaking the jobs wire contract (docs/PROTOCOL.md, "Jobs"), no more.

Jobs do not run by themselves: a test moves them with `advance(job_id, status, ...)`, which
updates the row and pushes a notification to every matching subscription of every connection,
as the real server does. `drop_all()` closes every connection (a restart); subscriptions die with
their connection and a re-subscription gets a new id. The framing, sign-in and restarts are
tests/client/fake_server.py's. The real server is in tests/e2e/test_client_jobs.py.
"""

import secrets
import uuid
from typing import Any

from tests.client.fake_server import FakeConnection, FakeServer, RpcFailure

FINAL = ("finished", "error")


def now() -> str:
    return "2026-12-02T01:00:00.000000Z"


def not_found(job_id: str) -> RpcFailure:
    return RpcFailure(-32004, "Job not found", {"job_id": job_id})


def wrong_state(status: str) -> RpcFailure:
    return RpcFailure(-32005, "Wrong job state", {"status": status})


class FakeJobsCircle(FakeServer):
    """Signs anyone in (the pubkey is the caller), keeps jobs in a dict, pushes notifications."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, dict[str, Any]] = {}  # insertion order: oldest first
        self.hold_subscribe_answer = False  # push a notification right behind the subscribe answer
        self.run_job_output = "42"

    # --- moving jobs ----------------------------------------------------------------------------

    async def advance(self, job_id: str, status: str, *, notify: bool = True, **fields: Any) -> None:
        """Set the job's status (and fields: output, value, error, logs) and notify its watchers."""
        job = self.jobs[job_id]
        new_logs = fields.pop("logs", None)
        if new_logs is not None:
            job["_logs"] = (job["_logs"] + "\n" if job["_logs"] else "") + new_logs
            job["logs_size"] = len(job["_logs"].encode())
        job.update(status=status, updated_at=now(), **fields)
        if not notify:
            return
        result: dict[str, Any] = {"job_id": job_id, "status": status, "updated_at": job["updated_at"]}
        if status in FINAL:
            result |= {key: job[key] for key in ("output", "value", "error")}
        if new_logs is not None:
            result["logs"] = new_logs
        await self.push(job, result)

    async def push(self, job: dict[str, Any], result: dict[str, Any]) -> None:
        for connection in self.connections:
            for sub_id, watch in list(connection.subscriptions.items()):
                if self._watches(connection, watch, job):
                    await self.notify(connection, sub_id, result)

    @staticmethod
    def _watches(connection: FakeConnection, watch: dict[str, Any], job: dict[str, Any]) -> bool:
        if watch.get("job_id") is not None:
            return watch["job_id"] == job["id"]
        return watch.get("all") or job["caller_id"] == connection.caller

    # --- answering -----------------------------------------------------------------------------

    async def answered(self, connection: FakeConnection, method: str, params: Any, result: Any) -> None:
        if method == "subscribe" and self.hold_subscribe_answer and params.get("job_id") in self.jobs:
            # The worst order the reader can see: the first notification right behind the answer,
            # both read before the subscriber's coroutine resumes.
            await self.notify(connection, result, {"job_id": params.get("job_id"), "status": "early"})

    def _own(self, connection: FakeConnection, job_id: Any) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None or job["caller_id"] != connection.caller:
            raise not_found(job_id)
        return job

    @staticmethod
    def public(job: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in job.items() if not key.startswith("_")}

    async def answer(self, connection: FakeConnection, method: str, params: Any) -> Any:
        if method in ("fetch_nonce", "authenticate", "whoami"):
            return await super().answer(connection, method, params)
        if connection.caller is None:
            raise RpcFailure(-32001, "Authentication required")
        if method in ("create_job", "run_job"):
            job_id = str(uuid.uuid4())
            self.jobs[job_id] = {
                "id": job_id,
                "caller_id": connection.caller,
                "context_id": "circle",
                "script": params["script"],
                "timeout": params.get("timeout", 300),
                "env_vars": params.get("env_vars", {}),
                "prerequisites": params.get("prerequisites", []),
                "status": "created",
                "output": None,
                "value": None,
                "error": None,
                "logs_size": 0,
                "created_at": now(),
                "updated_at": now(),
                "started_at": None,
                "finished_at": None,
                "elapsed_ms": None,
                "_logs": "",
            }
            if method == "run_job":
                return self.run_job_output
            return job_id
        if method == "start_job":
            job = self._own(connection, params["job_id"])
            if job["status"] != "created":
                raise wrong_state(job["status"])
            await self.advance(job["id"], "dispatched")
            return {"success": True}
        if method == "get_job":
            return self.public(self._own(connection, params["job_id"]))
        if method == "get_job_status":
            return self._own(connection, params["job_id"])["status"]
        if method == "get_job_output":
            job = self._own(connection, params["job_id"])
            if job["status"] != "finished":
                raise wrong_state(job["status"])
            return job["output"]
        if method == "get_job_logs":
            job = self._own(connection, params["job_id"])
            return {"logs": job["_logs"] or None}
        if method == "list_jobs":
            if params.get("all"):
                raise RpcFailure(-32003, "Forbidden", {"role": "member", "needs": "admin"})
            own = [job for job in reversed(self.jobs.values()) if job["caller_id"] == connection.caller]
            jobs = [self.public(job) for job in own]
            if "status" in params:
                jobs = [j for j in jobs if j["status"] == params["status"]]
            if "before" in params:
                ids = [j["id"] for j in jobs]
                jobs = jobs[ids.index(params["before"]) + 1 :]
            return jobs[: params.get("limit", 50)]
        if method == "stop_job":
            job = self._own(connection, params["job_id"])
            if job["status"] not in FINAL:
                error = {"kind": "stopped", "message": "stopped by its caller", "line": None, "column": None}
                await self.advance(job["id"], "error", error=error)
            return {"success": True}
        if method == "delete_job":
            job = self._own(connection, params["job_id"])
            if job["status"] in ("dispatched", "started"):
                raise wrong_state(job["status"])
            del self.jobs[job["id"]]
            return {"success": True}
        if method == "clear_all_jobs":
            gone = [
                j["id"]
                for j in self.jobs.values()
                if j["caller_id"] == connection.caller and j["status"] not in ("dispatched", "started")
            ]
            for job_id in gone:
                del self.jobs[job_id]
            return {"deleted": len(gone)}
        if method == "subscribe":
            if params.get("topic") != "jobs":
                raise RpcFailure(-32602, "Invalid params", {"field": "topic"})
            if params.get("job_id") is not None:
                self._own(connection, params["job_id"])
            sub_id = "0x" + secrets.token_hex(16)
            watch = {"job_id": params.get("job_id"), "all": params.get("all", False)}
            connection.subscriptions[sub_id] = watch
            return sub_id
        if method == "unsubscribe":
            return connection.subscriptions.pop(params["subscription"], None) is not None
        return await super().answer(connection, method, params)
