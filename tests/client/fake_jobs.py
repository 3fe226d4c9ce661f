"""An in-process WebSocket server speaking the jobs wire contract (docs/PROTOCOL.md, "Jobs"), no more.

Jobs do not run by themselves: a test moves them with `advance(job_id, status, ...)`, which
updates the row and pushes a notification to every matching subscription of every connection,
as the real server does. `drop_all()` closes every connection (a restart); subscriptions die with
their connection and a re-subscription gets a new id. The real server is in tests/e2e/test_client_jobs.py.
"""

import asyncio
import contextlib
import json
import secrets
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

FINAL = ("finished", "error")


def now() -> str:
    return "2026-12-02T01:00:00.000000Z"


@dataclass
class FakeConnection:
    number: int
    ws: ServerConnection
    caller: str | None = None
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {job_id, all}


class RpcFailure(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.error = {"code": code, "message": message} | ({"data": data} if data is not None else {})


def not_found(job_id: str) -> RpcFailure:
    return RpcFailure(-32004, "Job not found", {"job_id": job_id})


def wrong_state(status: str) -> RpcFailure:
    return RpcFailure(-32005, "Wrong job state", {"status": status})


class FakeJobsCircle:
    """Signs anyone in (the pubkey is the caller), keeps jobs in a dict, pushes notifications."""

    def __init__(self) -> None:
        self.server: Server | None = None
        self.port = 0
        self.connections: list[FakeConnection] = []
        self.jobs: dict[str, dict[str, Any]] = {}  # insertion order: oldest first
        self.calls: list[tuple[int, str, Any]] = []  # (connection number, method, params)
        self.hold_subscribe_answer = False  # push a notification BEFORE the subscribe answer's frame
        self.roles: dict[str, str] = {}  # pubkey -> role whoami names (default "member")
        self.pages: dict[str, tuple[str, bytes]] = {}  # HTTP path -> (content type, body), for a browser
        self.run_job_output = "42"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/circle"

    async def start(self) -> None:
        self.server = await serve(self._serve, "127.0.0.1", self.port, process_request=self._http)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        self.server = None

    async def drop_all(self, code: int = 1012) -> None:
        await asyncio.gather(*(c.ws.close(code, "restart") for c in self.connections))

    def methods(self, number: int | None = None) -> list[str]:
        return [method for n, method, _ in self.calls if number is None or n == number]

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
                    message = {"subscription": sub_id, "result": result}
                    frame = {"jsonrpc": "2.0", "method": "subscription", "params": message}
                    with contextlib.suppress(ConnectionClosed):
                        await connection.ws.send(json.dumps(frame))

    @staticmethod
    def _watches(connection: FakeConnection, watch: dict[str, Any], job: dict[str, Any]) -> bool:
        if watch.get("job_id") is not None:
            return watch["job_id"] == job["id"]
        return watch.get("all") or job["caller_id"] == connection.caller

    # --- serving --------------------------------------------------------------------------------

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        """A plain GET of one of `pages` (the console's HTML, its scripts); None: a WebSocket upgrade."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        page = self.pages.get(request.path)
        if page is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        content_type, body = page
        headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return Response(HTTPStatus.OK, "OK", headers, body)

    async def _serve(self, ws: ServerConnection) -> None:
        connection = FakeConnection(len(self.connections) + 1, ws)
        self.connections.append(connection)
        async for frame in ws:
            request = json.loads(frame)
            method, params = request["method"], request.get("params") or {}
            self.calls.append((connection.number, method, params))
            try:
                result = await self._answer(connection, method, params)
            except RpcFailure as failure:
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": failure.error}))
                continue
            answer = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result})
            if method == "subscribe" and self.hold_subscribe_answer:
                # The worst order the reader can see: the first notification right behind the answer,
                # both read before the subscriber's coroutine resumes.
                job = self.jobs.get(params.get("job_id"))
                early = {"job_id": params.get("job_id"), "status": "early"}
                notice = {"subscription": result, "result": early}
                frame = {"jsonrpc": "2.0", "method": "subscription", "params": notice}
                await ws.send(answer)
                if job is not None:
                    await ws.send(json.dumps(frame))
                continue
            await ws.send(answer)

    def _own(self, connection: FakeConnection, job_id: Any) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None or job["caller_id"] != connection.caller:
            raise not_found(job_id)
        return job

    @staticmethod
    def public(job: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in job.items() if not key.startswith("_")}

    async def _answer(self, connection: FakeConnection, method: str, params: dict[str, Any]) -> Any:
        if method == "fetch_nonce":
            return f"sign in on connection {connection.number}"
        if method == "authenticate":
            connection.caller = params["pubkey"]
            return True
        if method == "whoami":
            role = self.roles.get(connection.caller, "member") if connection.caller else None
            return {"authenticated": connection.caller is not None, "pubkey": connection.caller, "role": role}
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
        raise RpcFailure(-32601, "Method not found", {"method": method})
