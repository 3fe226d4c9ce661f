"""`subscribe` and `unsubscribe`: the RPC face of `circles.subscriptions` (any registered topic)."""

from typing import Any

from circles import jsonrpc
from circles.methods import registry, rpc_method
from circles.registry import Param
from circles.session import CircleSession
from circles.subscriptions import NOTIFICATION_METHOD

registry.add_notification(
    NOTIFICATION_METHOD,
    "A subscription's event: params {subscription, result}; for topic jobs the result is "
    "{job_id, caller_id, status, revision, updated_at} (and output, value, error once final); "
    "for topic records it is a change {seq, collection, key, op, version, data, updated_by, "
    "updated_at, source}, strictly increasing seq per subscription.",
    {
        "type": "object",
        "properties": {
            "subscription": {"type": "string"},
            "result": {
                "oneOf": [
                    {
                        "title": "job event",
                        "type": "object",
                        "required": ["job_id", "caller_id", "status", "revision", "updated_at"],
                    },
                    {
                        "title": "record change",
                        "type": "object",
                        "required": ["seq", "collection", "key", "op", "version", "data"],
                        "properties": {
                            "seq": {"type": "integer"},
                            "collection": {"type": "string"},
                            "key": {"type": "string"},
                            "op": {"enum": ["put", "delete"]},
                            "version": {"type": "integer"},
                            "data": {"type": ["object", "null"]},
                            "updated_by": {"type": "string"},
                            "updated_at": {"type": "string"},
                            "source": {"type": "string"},
                        },
                    },
                ]
            },
        },
    },
)


@rpc_method(
    "subscribe",
    "Subscribe to a topic's events (jobs: one job, your jobs, or with all every job of the circle; "
    "records: the changes of one collection, live, or from since on).",
    params=(
        Param("topic", "string", "the topic: jobs or records", max_length=40),
        Param("job_id", "string", "jobs: only this job", required=False, max_length=64),
        Param("all", "boolean", "jobs: every job of the circle (owner and admins)", required=False),
        Param("collection", "string", "records: the collection (required)", required=False, max_length=64),
        Param("prefix", "string", "records: only keys starting with this", required=False, max_length=200),
        Param(
            "since",
            "integer",
            "records: the last seq you saw; first the kept changes after it",
            required=False,
            minimum=0,
        ),
    ),
    result={"type": "string"},
    errors=(
        jsonrpc.INVALID_PARAMS,
        jsonrpc.AUTHENTICATION_REQUIRED,
        jsonrpc.FORBIDDEN,
        jsonrpc.JOB_NOT_FOUND,
        jsonrpc.CHANGES_COMPACTED,
        jsonrpc.RATE_LIMITED,
    ),
    inline=True,  # answered before any of its notifications can be sent (the consumer's order)
    takes_request_id=True,
)
async def subscribe(session: CircleSession, topic: str, *, request_id: str = "", **params: Any) -> str:
    subscriptions = session.subscriptions
    sub = await subscriptions.subscribe(topic, session, params)
    if not request_id:  # sent as a notification: no answer will go out to wait for
        subscriptions.release(sub)
    return sub


@rpc_method(
    "unsubscribe",
    "End a subscription: true, or false if there was none by that id.",
    params=(Param("subscription", "string", "a subscription id", max_length=100),),
    result={"type": "boolean"},
    inline=True,
)
async def unsubscribe(session: CircleSession, subscription: str) -> bool:
    return session.subscriptions.unsubscribe(subscription)
