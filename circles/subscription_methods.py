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
    "{job_id, caller_id, status, revision, updated_at} (and output, value, error once final).",
    {
        "type": "object",
        "properties": {"subscription": {"type": "string"}, "result": {"type": "object"}},
    },
)


@rpc_method(
    "subscribe",
    "Subscribe to a topic's events (jobs: one job, your jobs, or with all every job of the circle).",
    params=(
        Param("topic", "string", "the topic: jobs", max_length=40),
        Param("job_id", "string", "jobs: only this job", required=False, max_length=64),
        Param("all", "boolean", "jobs: every job of the circle (owner and admins)", required=False),
    ),
    result={"type": "string"},
    errors=(
        jsonrpc.INVALID_PARAMS,
        jsonrpc.AUTHENTICATION_REQUIRED,
        jsonrpc.FORBIDDEN,
        jsonrpc.JOB_NOT_FOUND,
        jsonrpc.RATE_LIMITED,
    ),
    inline=True,  # answered before any of its notifications can be sent (the consumer's order)
)
async def subscribe(session: CircleSession, topic: str, **params: Any) -> str:
    return await session.subscriptions.subscribe(topic, session, params)


@rpc_method(
    "unsubscribe",
    "End a subscription: true, or false if there was none by that id.",
    params=(Param("subscription", "string", "a subscription id", max_length=100),),
    result={"type": "boolean"},
    inline=True,
)
async def unsubscribe(session: CircleSession, subscription: str) -> bool:
    return session.subscriptions.unsubscribe(subscription)
