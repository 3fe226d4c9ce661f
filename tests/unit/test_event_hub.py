"""The process's event hub: one channel in each watched group, events handed only to their routes."""

import asyncio
from typing import Any

from channels.layers import InMemoryChannelLayer

from circles.event_hub import EventHub
from executor.job_events import ALL_JOBS_ROUTE, caller_route, group_name, job_route, layer_message

GROUP = group_name(1)


class Connection:
    """A receiver that keeps what it was handed."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def deliver(self, topic: str, event: dict[str, Any]) -> None:
        self.events.append((topic, event))


def job_event(job_id: str, caller: str, revision: int = 1) -> dict[str, Any]:
    return {"job_id": job_id, "caller_id": caller, "status": "started", "revision": revision}


async def handed_on(hub: EventHub, count: int) -> None:
    for _ in range(200):
        if hub.delivered >= count:
            return
        await asyncio.sleep(0.005)


async def test_an_event_reaches_the_watchers_of_its_routes_only_and_each_once() -> None:
    layer = InMemoryChannelLayer()
    hub = EventHub(layer)
    alice, bob, admin, waiter = Connection(), Connection(), Connection(), Connection()
    try:
        await hub.watch(GROUP, caller_route("alice"), alice.deliver)
        await hub.watch(GROUP, job_route("j1"), alice.deliver)  # the same connection on two routes
        await hub.watch(GROUP, caller_route("bob"), bob.deliver)
        await hub.watch(GROUP, ALL_JOBS_ROUTE, admin.deliver)
        await hub.watch(GROUP, job_route("j2"), waiter.deliver)
        await layer.group_send(GROUP, layer_message(1, job_event("j1", "alice")))
        await handed_on(hub, 2)
        assert alice.events == [("jobs", job_event("j1", "alice"))]  # once, not once per route
        assert admin.events == [("jobs", job_event("j1", "alice"))]
        assert bob.events == [] and waiter.events == []
        await layer.group_send(GROUP, layer_message(1, job_event("j2", "bob")))
        await handed_on(hub, 5)
        assert [event["job_id"] for _, event in bob.events] == ["j2"]
        assert [event["job_id"] for _, event in waiter.events] == ["j2"]
        assert len(alice.events) == 1
    finally:
        hub.stop()


async def test_another_circles_events_reach_no_watcher_of_this_one() -> None:
    layer = InMemoryChannelLayer()
    hub = EventHub(layer)
    alice = Connection()
    try:
        await hub.watch(GROUP, ALL_JOBS_ROUTE, alice.deliver)
        await hub.watch(group_name(2), caller_route("nobody"), Connection().deliver)
        await layer.group_send(group_name(2), layer_message(2, job_event("x", "carol")))
        await layer.group_send(GROUP, layer_message(1, job_event("y", "carol")))
        await handed_on(hub, 1)
        assert [event["job_id"] for _, event in alice.events] == ["y"]
    finally:
        hub.stop()


async def test_the_group_is_left_after_its_last_watcher_and_joined_again_by_the_next() -> None:
    layer = InMemoryChannelLayer()
    hub = EventHub(layer)
    first, second = Connection(), Connection()
    try:
        await hub.watch(GROUP, caller_route("alice"), first.deliver)
        assert hub.channel in layer.groups[GROUP]
        hub.unwatch(GROUP, caller_route("alice"), first.deliver)
        for _ in range(20):
            await asyncio.sleep(0)
        assert GROUP not in layer.groups and GROUP not in hub.joined
        await hub.watch(GROUP, caller_route("alice"), second.deliver)
        assert hub.channel in layer.groups[GROUP]
        await layer.group_send(GROUP, layer_message(1, job_event("j", "alice")))
        await handed_on(hub, 1)
        assert first.events == [] and len(second.events) == 1
    finally:
        hub.stop()


async def test_a_watch_racing_the_leave_of_its_group_ends_in_the_group() -> None:
    layer = InMemoryChannelLayer()
    hub = EventHub(layer)
    connection = Connection()
    try:
        await hub.watch(GROUP, caller_route("a"), connection.deliver)
        hub.unwatch(GROUP, caller_route("a"), connection.deliver)  # its leave is under way
        await hub.watch(GROUP, caller_route("a"), connection.deliver)
        for _ in range(20):
            await asyncio.sleep(0)
        assert GROUP in hub.joined and hub.channel in layer.groups[GROUP]
    finally:
        hub.stop()


async def test_a_failing_receiver_does_not_stop_the_others() -> None:
    layer = InMemoryChannelLayer()
    hub = EventHub(layer)
    good = Connection()

    def broken(topic: str, event: dict[str, Any]) -> None:
        raise RuntimeError("broken receiver")

    try:
        await hub.watch(GROUP, ALL_JOBS_ROUTE, broken)
        await hub.watch(GROUP, ALL_JOBS_ROUTE, good.deliver)
        await layer.group_send(GROUP, layer_message(1, job_event("j", "a")))
        await handed_on(hub, 2)
        assert len(good.events) == 1
    finally:
        hub.stop()
