"""Circles client: sign in to a circle with a secp256k1 key and run Rhai scripts over JSON-RPC.

Example::

    async with circles_client.connect("ws://127.0.0.1:8000/03ab…", circles_client.load_key()) as c:
        result = await c.play("let x = 10; x * 2")   # {"output": "20", "value": 20, ...}
        job = await c.create_job("long_work()", timeout=600)
        state = await job.wait(start=True)          # {"status": "finished", "output": ..., ...}
        async with c.watch("payments") as changes:   # every committed change, once, in order
            async for change in changes:             # {"seq", "key", "op", "data", "version", ...}
                print(change)
"""

from circles_client.client import CircleClient, connect, websocket_url
from circles_client.errors import (
    AuthenticationRequired,
    ChangesCompacted,
    CircleNotFound,
    CirclesError,
    ConnectionLost,
    ExecutionError,
    ExecutorUnavailable,
    Forbidden,
    InternalError,
    InvalidCredentials,
    InvalidParams,
    InvalidRequest,
    JobNotFound,
    MethodNotFound,
    ParseError,
    RateLimited,
    RequestTimeout,
    RpcError,
    TooManyRequests,
    TooManyUnreadNotifications,
    WrongJobState,
)
from circles_client.jobs import Job
from circles_client.keys import InvalidKey, SigningKey, load_key, read_key_file, write_key_file
from circles_client.records import RecordWatch
from circles_client.subscriptions import Subscription

__version__ = "0.1.0"

__all__ = [
    "AuthenticationRequired",
    "ChangesCompacted",
    "CircleClient",
    "CircleNotFound",
    "CirclesError",
    "ConnectionLost",
    "ExecutionError",
    "ExecutorUnavailable",
    "Forbidden",
    "InternalError",
    "InvalidCredentials",
    "InvalidKey",
    "InvalidParams",
    "InvalidRequest",
    "Job",
    "JobNotFound",
    "MethodNotFound",
    "ParseError",
    "RateLimited",
    "RecordWatch",
    "RequestTimeout",
    "RpcError",
    "SigningKey",
    "Subscription",
    "TooManyRequests",
    "TooManyUnreadNotifications",
    "WrongJobState",
    "connect",
    "load_key",
    "read_key_file",
    "websocket_url",
    "write_key_file",
]
