"""Membership notices across processes, on the private Redis: a change published is heard and counted."""

import asyncio
import threading
import uuid

from executor import membership_notices
from tests.helpers.redis_server import RedisServer


async def test_a_published_change_is_heard_by_the_listener(redis_server: RedisServer, settings) -> None:
    settings.REDIS_URL = redis_server.url
    settings.CIRCLES_QUEUE_STREAM = f"notices:{uuid.uuid4().hex[:8]}"
    membership_notices._publisher.cache_clear()
    versions = membership_notices.versions
    membership_notices.start_listening()
    try:
        async with asyncio.timeout(10):
            while not versions.subscribed:
                await asyncio.sleep(0.01)
        assert membership_notices.trusted()
        before = versions.current(4242)
        # A worker announces from its own thread, as after a run's commit; counted here once
        # locally and once when heard.
        thread = threading.Thread(target=membership_notices.changed, args=(4242,))
        thread.start()
        thread.join()
        async with asyncio.timeout(10):
            while versions.current(4242)[1] < before[1] + 2:
                await asyncio.sleep(0.01)
        assert versions.current(4242)[0] == before[0]  # no other circle's cache was touched
    finally:
        membership_notices._listener.cancel()
        await asyncio.gather(membership_notices._listener, return_exceptions=True)
        membership_notices._publisher.cache_clear()
    assert not versions.subscribed
