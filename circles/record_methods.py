"""Live circle data on the RPC face: the "records" subscription topic and `records_head`.

docs/PROTOCOL.md, "Live records". Who may watch a circle's records is who may read them with
`db::get`: a signed-in caller whose role may `play` (the same check, -32001 / -32003).
"""

import re
from typing import Any

from circles import jsonrpc
from circles.change_sources import DatabaseLog, process_hub
from circles.jsonrpc import RpcError
from circles.methods import rpc_method
from circles.record_stream import RecordStream, compacted
from circles.session import CircleSession
from circles.standing import ReaderGate, check_reader
from circles.subscriptions import Topic, register_topic
from executor.dsl import COLLECTION

RECORDS = "records"
PREFIX = re.compile(r"[A-Za-z0-9_.:@-]{0,200}\Z")  # what keys are made of (executor.dsl.NAME), maybe empty
_log = DatabaseLog()


def invalid(field: str, reason: str) -> RpcError:
    """A -32602 naming `field`."""
    data = {"field": field, "reason": reason}
    return RpcError(jsonrpc.INVALID_PARAMS, data=data, detail=f"{field} {reason}")


def records_params(params: dict[str, Any]) -> tuple[str, str, int | None]:
    """(collection, prefix, since) of a records subscribe, checked (-32602)."""
    collection = params.get("collection")
    if collection is None:
        raise invalid("collection", "is required")
    if not isinstance(collection, str) or not COLLECTION.match(collection):
        raise invalid("collection", "must be 1-64 characters of letters, digits and _ . : -")
    prefix = params.get("prefix", "")
    if not isinstance(prefix, str) or not PREFIX.match(prefix):
        raise invalid("prefix", "must be at most 200 characters of letters, digits and _ . : @ -")
    since = params.get("since")
    if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
        raise invalid("since", "must be an integer >= 0")
    return collection, prefix, since


async def open_records(session: CircleSession, params: dict[str, Any]) -> RecordStream:
    """Check a records subscribe and open its stream (watching the hub before `since` is checked)."""
    await check_reader(session)
    collection, prefix, since = records_params(params)
    subscriptions = session.subscriptions
    stream = RecordStream(
        process_hub(),
        _log,
        subscriptions,
        circle_id=session.circle.id,
        collection=collection,
        prefix=prefix,
        since=since,
        buffer_limit=subscriptions.max_unread,
        gate=ReaderGate(session),
    )
    await stream.open()
    if since is None:
        return stream
    try:
        head, oldest = await _log.window(session.circle.id)
    except BaseException:
        stream.stop()
        raise
    if since > head:
        stream.stop()
        raise invalid("since", f"greater than the latest change {head}")
    if since < oldest - 1:
        stream.stop()
        raise compacted(head, oldest)
    return stream


register_topic(
    Topic(RECORDS, group=None, open=open_records, params=frozenset({"collection", "prefix", "since"}))
)


@rpc_method(
    "records_head",
    "The circle's latest change seq (0 if none) and the oldest one kept: subscribe with since=seq.",
    result={
        "type": "object",
        "properties": {"seq": {"type": "integer"}, "oldest": {"type": "integer"}},
    },
    errors=(jsonrpc.AUTHENTICATION_REQUIRED, jsonrpc.FORBIDDEN),
)
async def records_head(session: CircleSession) -> dict[str, int]:
    await check_reader(session)
    head, oldest = await _log.window(session.circle.id)
    return {"seq": head, "oldest": oldest}
