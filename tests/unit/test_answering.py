"""Answering one request: a method that asks is given the id of the request it answers, and only that."""

import asyncio
import logging

from circles.answering import answer
from circles.jsonrpc import Request
from circles.registry import Method, MethodRegistry
from tests.unit.test_session import session_with

LOG = logging.LoggerAdapter(logging.getLogger("test"), {})


def registry_with_echo(seen: list[str] | None = None) -> MethodRegistry:
    registry = MethodRegistry()

    async def echo_request_id(session, *, request_id: str) -> str:
        await asyncio.sleep(0)  # still its own after a suspension
        if seen is not None:
            seen.append(request_id)
        return request_id

    registry.add(
        Method(
            name="request_id",
            handler=echo_request_id,
            summary="the id being answered",
            takes_request_id=True,
        )
    )
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


def test_a_notification_has_no_id() -> None:
    seen: list[str] = []
    registry, session = registry_with_echo(seen), session_with(60)

    async def scenario() -> None:
        await answer(registry, session, Request("request_id", None, 5), LOG)
        assert (
            await answer(registry, session, Request("request_id", None, None, is_notification=True), LOG)
            is None
        )

    asyncio.run(scenario())
    assert seen == ["5", ""]


def test_a_long_string_id_is_cut_for_jobs_and_logs() -> None:
    registry, session = registry_with_echo(), session_with(60)
    response = asyncio.run(answer(registry, session, Request("request_id", None, "x" * 10_000), LOG))
    assert response["id"] == "x" * 10_000 and len(response["result"]) == 100


def test_a_method_that_does_not_ask_is_not_given_the_id() -> None:
    registry, session = MethodRegistry(), session_with(60)

    async def plain(session) -> str:
        return "ok"

    registry.add(Method(name="plain", handler=plain, summary="takes nothing"))
    response = asyncio.run(answer(registry, session, Request("plain", None, 3), LOG))
    assert response["result"] == "ok"
