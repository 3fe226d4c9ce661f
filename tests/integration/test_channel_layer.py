"""The channel layer (executor/layer.py) on a real redis-server, and the channels-redis internals it uses.

`ResilientRedisPubSubChannelLayer` reaches into channels-redis (`_get_layer`, `_get_shard`, the
loop layer's `prefix` and `channels`), and `executor.job_events` publishes to a group's channel by
its name (`_get_group_channel_name`), so channels-redis is pinned to one version in
requirements.txt; these tests fail when the installed one is not it, when those parts change
shape, or when the layer stops delivering to a channel named while Redis was away.
"""

import asyncio
import inspect
import re
from importlib.metadata import version
from pathlib import Path

import pytest
import redis
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection

from executor.job_events import group_channel, group_name, layer_message
from executor.layer import ResilientRedisPubSubChannelLayer, layer_on_one_redis
from executor.redis_clients import RedisTarget
from tests.helpers.redis_server import RedisServer

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"


def pinned_version(package: str) -> str:
    """The exact version requirements.txt pins `package` to."""
    match = re.search(rf"^{re.escape(package)}==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE)
    assert match, f"{package} is not pinned to an exact version in requirements.txt"
    return match.group(1)


def test_channels_redis_is_the_pinned_version() -> None:
    assert version("channels-redis") == pinned_version("channels-redis")


def test_the_internals_the_layer_uses_keep_their_shape() -> None:
    assert list(inspect.signature(RedisPubSubChannelLayer._get_layer).parameters) == ["self"]
    assert list(inspect.signature(RedisPubSubLoopLayer._get_shard).parameters) == [
        "self",
        "channel_or_group_name",
    ]
    assert list(inspect.signature(RedisSingleShardConnection.subscribe).parameters) == ["self", "channel"]
    assert inspect.iscoroutinefunction(RedisSingleShardConnection.subscribe)
    assert inspect.iscoroutinefunction(RedisPubSubLoopLayer.new_channel)


async def test_one_loop_layer_per_event_loop_with_a_prefix_and_a_queue_per_channel(redis_server) -> None:
    layer = ResilientRedisPubSubChannelLayer(hosts=[RedisTarget(redis_server.url).layer_host()], prefix="t.")
    loop_layer = layer._get_layer()
    assert loop_layer is layer._get_layer() and isinstance(loop_layer, RedisPubSubLoopLayer)
    assert loop_layer.prefix == "t."
    try:
        channel = await layer.new_channel()
        assert channel.startswith("t.specific.") and isinstance(loop_layer.channels[channel], asyncio.Queue)
        assert isinstance(loop_layer._get_shard(channel), RedisSingleShardConnection)
        await layer.send(channel, {"type": "hello"})
        assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "hello"}
    finally:
        await layer.flush()


@pytest.fixture
def own_redis(tmp_path: Path):
    """A redis-server of this test's own, to stop and start."""
    server = RedisServer(tmp_path)
    yield server
    server.stop()


async def test_a_channel_named_while_redis_is_away_receives_once_it_is_back(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    layer = ResilientRedisPubSubChannelLayer(hosts=[RedisTarget(own_redis.url).layer_host()])
    channel = await layer.new_channel()  # Redis is not started: no error, subscribed later
    assert "retrying in the background" in caplog.text
    received = asyncio.ensure_future(layer.receive(channel))
    try:
        await asyncio.to_thread(own_redis.start)
        deadline = asyncio.get_running_loop().time() + 10
        while not received.done() and asyncio.get_running_loop().time() < deadline:
            await layer.send(channel, {"type": "hello"})  # lost until the retry has subscribed
            await asyncio.wait([received], timeout=0.2)
        assert received.done() and received.result() == {"type": "hello"}
    finally:
        received.cancel()
        await layer.flush()


async def test_a_group_message_published_without_the_layer_reaches_the_group(redis_server) -> None:
    # executor.job_events sends job events from threads as one PUBLISH of the layer's encoding on
    # the group's channel (job_events.group_channel): that must stay what group_send does.
    layer = ResilientRedisPubSubChannelLayer(hosts=[RedisTarget(redis_server.url).layer_host()])
    loop_layer = layer._get_layer()
    group = group_name(7)
    assert loop_layer._get_group_channel_name(group) == group_channel(7)  # the settings' prefix: asgi
    client = redis.Redis.from_url(redis_server.url)
    try:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        event = {"job_id": "j", "caller_id": "c", "status": "finished", "revision": 3}
        message = layer_message(7, event)
        await asyncio.to_thread(client.publish, group_channel(7), layer.serialize(message))
        assert await asyncio.wait_for(layer.receive(channel), 5) == message
    finally:
        client.close()
        await layer.flush()


async def test_one_redis_listed_per_connection_spreads_channels_and_all_arrive(redis_server) -> None:
    # The settings list REDIS_URL once per pub/sub connection (CIRCLES_CHANNEL_LAYER_CONNECTIONS):
    # channels land on different connections, each with its own lock, and since pub/sub is
    # server-wide a PUBLISH made anywhere (the layer's send, a worker's direct PUBLISH, a group
    # send) reaches the subscriber whichever connection it subscribed on.
    host = RedisTarget(redis_server.url).layer_host()
    layer = ResilientRedisPubSubChannelLayer(hosts=[host] * 4)
    loop_layer = layer._get_layer()
    client = redis.Redis.from_url(redis_server.url)
    try:
        channels = [await layer.new_channel() for _ in range(16)]
        assert len({id(loop_layer._get_shard(channel)) for channel in channels}) > 1
        for number, channel in enumerate(channels):
            await layer.send(channel, {"type": "sent", "n": number})
        for number, channel in enumerate(channels):
            assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "sent", "n": number}
        await asyncio.to_thread(client.publish, channels[5], layer.serialize({"type": "direct"}))
        assert await asyncio.wait_for(layer.receive(channels[5]), 5) == {"type": "direct"}
        group = group_name(9)
        for channel in channels[:3]:
            await layer.group_add(group, channel)
        await layer.group_send(group, {"type": "to.group"})
        for channel in channels[:3]:
            assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "to.group"}
    finally:
        client.close()
        await layer.flush()


def test_one_redis_listed_many_times_is_one_redis(settings) -> None:
    settings.CHANNEL_LAYERS = {"default": {"CONFIG": {"hosts": [{"address": "redis://a"}] * 8}}}
    assert layer_on_one_redis()
    settings.CHANNEL_LAYERS = {"default": {"CONFIG": {"hosts": ["redis://a", "redis://b"]}}}
    assert not layer_on_one_redis()
