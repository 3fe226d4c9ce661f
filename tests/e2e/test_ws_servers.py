"""The same sign-in over the other ways the endpoint is served: daphne, the development server of
`make run` (`manage.py runserver`, daphne's), and the Redis channel layer."""

import pytest

from tests.e2e.conftest import World
from tests.helpers.redis_server import RedisServer
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e


async def sign_in_round_trip(server: str, world: World) -> None:
    async with await RpcClient.connect(f"{server}/{world.circle}") as client:
        await client.sign_in(world.admin)
        assert (await client.call("whoami"))["role"] == "admin"
        assert (await client.request("nope"))["error"]["code"] == -32601


async def test_daphne_serves_the_endpoint(start_server, world: World) -> None:
    await sign_in_round_trip(start_server("daphne"), world)


async def test_the_development_server_serves_the_endpoint(start_server, world: World) -> None:
    # `make run`'s server: daphne's runserver, whose app only that command's process loads.
    await sign_in_round_trip(start_server("runserver"), world)


async def test_uvicorn_with_the_redis_channel_layer(
    start_server, world: World, redis_server: RedisServer
) -> None:
    await sign_in_round_trip(start_server(REDIS_URL=redis_server.url), world)
