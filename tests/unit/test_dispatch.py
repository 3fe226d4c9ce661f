"""Answering one request: the request's id is known to the method while it runs, and only then."""

import asyncio
import logging

from circles.dispatch import answer, current_request_id
from circles.jsonrpc import Request
from circles.registry import Method, MethodRegistry
from tests.unit.test_session import session_with

LOG = logging.LoggerAdapter(logging.getLogger("test"), {})


def registry_with_echo(seen: list[str] | None = None) -> MethodRegistry:
    registry = MethodRegistry()

    async def request_id(session) -> str:
        await asyncio.sleep(0)  # still known after a suspension
        if seen is not None:
            seen.append(current_request_id())
        return current_request_id()

    registry.add(Method(name="request_id", handler=request_id, summary="the id being answered"))
    return registry


def test_the_method_sees_the_id_of_the_request_it_answers() -> None:
    registry, session = registry_with_echo(), session_with(60)

    async def scenario() -> list:
        requests = [
            Request("request_id", None, 7),
            Request("request_id", None, "a-7"),
            Request("request_id", None, None),
        ]
        return await asyncio.gather(*(answer(registry, session, request, LOG) for request in requests))

    responses = asyncio.run(scenario())
    assert [response["result"] for response in responses] == ["7", '"a-7"', "null"]


def test_a_notification_has_no_id_and_the_id_does_not_outlive_the_request() -> None:
    seen: list[str] = []
    registry, session = registry_with_echo(seen), session_with(60)

    async def scenario() -> str:
        await answer(registry, session, Request("request_id", None, 5), LOG)
        assert (
            await answer(registry, session, Request("request_id", None, None, is_notification=True), LOG)
            is None
        )
        return current_request_id()

    assert asyncio.run(scenario()) == ""
    assert seen == ["5", ""]


def test_a_long_string_id_is_cut_for_jobs_and_logs() -> None:
    registry, session = registry_with_echo(), session_with(60)
    response = asyncio.run(answer(registry, session, Request("request_id", None, "x" * 10_000), LOG))
    assert response["id"] == "x" * 10_000 and len(response["result"]) == 100
