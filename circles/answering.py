"""Answering one request: find the method, bind params, call it, turn the outcome into a response."""

import logging
from typing import Any

import orjson

from circles.jsonrpc import INTERNAL_ERROR, METHOD_NOT_FOUND, Request, RpcError, failure, success
from circles.metrics import count_rpc
from circles.registry import MethodRegistry
from circles.session import CircleSession

REQUEST_ID_CHARS = 100  # what jobs and log lines carry of an id (a client may send a long string)


def request_id_text(request: Request) -> str:
    """The request's JSON-RPC id as JSON text, cut for jobs and log lines ("" for a notification)."""
    if request.is_notification:
        return ""
    return orjson.dumps(request.id).decode()[:REQUEST_ID_CHARS]


async def answer(
    registry: MethodRegistry, session: CircleSession, request: Request, log: logging.LoggerAdapter
) -> dict[str, Any] | None:
    """Run `request` and return its response object, or None for a notification.

    A method that `takes_request_id` gets the request's id as `request_id` (`request_id_text`).
    Every failure is logged with the connection's circle and peer (the adapter carries
    them); clients get only the code, message and data, never internals.
    """
    method = registry.get(request.method)
    try:
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, data={"method": request.method[:100]})
        params = method.bind(request.params)
        if method.takes_request_id:  # only methods that ask pay for encoding the id
            params["request_id"] = request_id_text(request)
        result = await method.handler(session, **params)
    except RpcError as error:
        count_rpc(request.method, error.code, known=method is not None)
        log.info(
            "%s failed: %s %s%s",
            request.method[:100],
            error.code,
            error.message,
            f" ({error.log_detail})" if error.log_detail else "",
        )
        return None if request.is_notification else failure(request.id, error)
    except Exception:
        count_rpc(request.method, INTERNAL_ERROR, known=method is not None)
        log.exception("%s raised", request.method[:100])
        return None if request.is_notification else failure(request.id, RpcError(INTERNAL_ERROR))
    count_rpc(request.method, 0, known=True)
    return None if request.is_notification else success(request.id, result)
