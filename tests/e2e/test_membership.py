"""Membership from scripts, end to end: two real uvicorn processes, Redis, two real `rhai_worker`s.

The owner changes membership over one server; the member it concerns is connected to the other
one. Roles are cached for an hour here (CIRCLES_ROLE_CACHE_SECONDS), so a change that took
effect did so because the cache was invalidated across processes, not because it expired.
"""

import uuid

import pytest

from tests.e2e.conftest import World
from tests.helpers.keys import WalletKey
from tests.helpers.processes import manage, server_env
from tests.helpers.redis_server import RedisServer
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e

FORBIDDEN = -32003
EXECUTION_ERROR = -32000


@pytest.fixture(scope="module")
def queue_settings(redis_server: RedisServer) -> dict[str, str]:
    return {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e-members:{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="module")
def workers(start_workers, queue_settings):
    return [start_workers(**queue_settings) for _ in range(2)]


@pytest.fixture(scope="module")
def servers(start_server, queue_settings, workers) -> tuple[str, str]:
    """Two ASGI processes on the same Redis and database: each holds its own role caches."""
    settings = {**queue_settings, "CIRCLES_ROLE_CACHE_SECONDS": "3600"}
    return start_server(**settings), start_server(**settings)


class Circle:
    """A circle of its own for one test, made with the management commands: owner, admin, member."""

    def __init__(self, world: World) -> None:
        tag = uuid.uuid4().hex[:8]
        self.owner, self.admin, self.member, self.other = (
            WalletKey.named(f"members-{tag}-{who}") for who in ("owner", "admin", "member", "other")
        )
        self.key = self.owner.pubkey
        env = server_env(world.database_url)
        manage(env, "create_circle", "--name", f"members-{tag}", "--pubkey", self.key)
        manage(env, "add_member", self.key, self.admin.pubkey, "--role", "admin")
        manage(env, "add_member", self.key, self.member.pubkey, "--role", "member")

    async def client(self, server: str, key: WalletKey) -> RpcClient:
        client = await RpcClient.connect(f"{server}/{self.key}")
        await client.sign_in(key)
        return client


@pytest.fixture
def circle(world: World) -> Circle:
    return Circle(world)


async def play(client: RpcClient, script: str) -> dict:
    return await client.request("play", {"script": script}, timeout=30)


async def value(client: RpcClient, script: str):
    response = await play(client, script)
    assert "result" in response, response
    return response["result"]["value"]


async def refusal(client: RpcClient, script: str) -> str:
    response = await play(client, script)
    assert response.get("error", {}).get("code") == EXECUTION_ERROR, response
    assert response["error"]["data"]["kind"] == "host", response
    return response["error"]["data"]["message"]


async def members(client: RpcClient) -> dict[str, str]:
    return {m["pubkey"] or m["address"]: m["role"] for m in await value(client, "circle::members()")}


async def test_the_owner_adds_a_member_whose_next_play_is_allowed(servers, circle: Circle) -> None:
    one, two = servers
    async with (
        await circle.client(one, circle.owner) as owner,
        await circle.client(two, circle.other) as other,
    ):
        refused = await play(other, "40 + 2")
        assert refused["error"]["code"] == FORBIDDEN and refused["error"]["data"]["role"] == "guest"
        assert await value(owner, f'circle::add_member("{circle.other.pubkey}", "member")') is True
        assert await value(other, "CALLER_ROLE") == "member"  # its next play, on the other server
        assert (await other.call("whoami"))["role"] == "member"


async def test_a_removed_member_is_refused_at_its_next_call(servers, circle: Circle) -> None:
    one, two = servers
    async with (
        await circle.client(one, circle.owner) as owner,
        await circle.client(two, circle.member) as member,
    ):
        assert await value(member, "CALLER_ROLE") == "member"  # cached now, for an hour
        assert await value(owner, f'circle::remove_member("{circle.member.pubkey}")') is True
        refused = await play(member, "40 + 2")
        assert refused["error"]["code"] == FORBIDDEN, refused
        assert refused["error"]["data"] == {"role": "guest", "needs": "member"}
        assert (await member.call("whoami"))["role"] == "guest"


async def test_a_demoted_admin_runs_as_a_member_at_its_next_call(servers, circle: Circle) -> None:
    one, two = servers
    async with (
        await circle.client(one, circle.owner) as owner,
        await circle.client(two, circle.admin) as admin,
    ):
        assert await value(admin, "CALLER_ROLE") == "admin"
        assert await value(owner, f'circle::set_role("{circle.admin.pubkey}", "member")') is True
        assert await value(admin, "CALLER_ROLE") == "member"
        message = await refusal(admin, f'circle::remove_member("{circle.member.pubkey}")')
        assert (
            message == "circle::remove_member: role member may not change membership; owner or admin needed"
        )


async def test_an_admins_allowed_and_refused_changes(servers, circle: Circle) -> None:
    one, two = servers
    async with (
        await circle.client(one, circle.admin) as admin,
        await circle.client(two, circle.owner) as owner,
    ):
        assert await value(admin, f'circle::add_member("{circle.other.pubkey}", "guest")') is True
        assert await value(admin, f'circle::set_role("{circle.other.pubkey}", "member")') is True
        assert await value(admin, f'circle::remove_member("{circle.member.pubkey}")') is True
        refused = {
            f'circle::add_member("{WalletKey.named("x").pubkey}", "admin")': "an admin may not add admins",
            f'circle::set_role("{circle.other.pubkey}", "admin")': "an admin may not make admins",
            f'circle::remove_member("{circle.admin.pubkey}")': "an admin may not remove admins",
            f'circle::remove_member("{circle.owner.pubkey}")': "the owner cannot be removed",
            'circle::update(#{name: "taken over"})': "role admin may not change the circle's settings",
        }
        for script, says in refused.items():
            assert says in await refusal(admin, script)
        expected = {circle.owner.pubkey: "owner", circle.admin.pubkey: "admin", circle.other.pubkey: "member"}
        assert await members(owner) == expected
        assert (await value(owner, "circle::info()"))["name"].startswith("members-")


async def test_a_members_attempt_is_refused_with_the_documented_error(servers, circle: Circle) -> None:
    one, _ = servers
    async with await circle.client(one, circle.member) as member:
        response = await play(member, f'let x = 1;\ncircle::add_member("{circle.other.pubkey}", "member")')
    assert response["error"]["code"] == EXECUTION_ERROR
    assert response["error"]["data"] == {
        "kind": "host",
        "message": "circle::add_member: role member may not change membership; owner or admin needed",
        "line": 2,
        "column": 9,
    }


async def test_a_run_that_adds_a_member_then_throws_leaves_the_membership_as_it_was(
    servers, circle: Circle
) -> None:
    one, two = servers
    async with (
        await circle.client(one, circle.owner) as owner,
        await circle.client(two, circle.other) as other,
    ):
        before = await members(owner)
        response = await play(
            owner, f'circle::add_member("{circle.other.pubkey}", "admin"); throw "changed my mind"'
        )
        assert response["error"]["data"]["kind"] == "throw"
        assert await members(owner) == before
        assert (await play(other, "1"))["error"]["code"] == FORBIDDEN  # it never became a member


async def test_the_owner_updates_the_circle_and_guests_may_then_play(servers, circle: Circle) -> None:
    one, two = servers
    async with (
        await circle.client(one, circle.owner) as owner,
        await circle.client(two, circle.other) as guest,
    ):
        assert (await play(guest, "1"))["error"]["code"] == FORBIDDEN
        changed = await value(owner, 'circle::update(#{name: "renamed", allow_guests: true})')
        assert changed["name"][1] == "renamed" and changed["allow_guests"] == [False, True]
        assert await value(guest, "CALLER_ROLE") == "guest"
        assert "role guest may not write" in await refusal(guest, 'db::put("c", "k", #{})')


async def test_a_key_added_by_address_signs_in_with_its_role(servers, circle: Circle) -> None:
    one, two = servers
    async with await circle.client(one, circle.owner) as owner:
        assert await value(owner, f'circle::add_member("{circle.other.address}", "member", "Ann")') is True
    async with await RpcClient.connect(f"{two}/{circle.key}") as other:
        await other.sign_in(circle.other, pubkey=circle.other.address)  # as a browser wallet does
        assert (await other.call("whoami"))["role"] == "member"
        assert await value(other, "CALLER_ROLE") == "member"


async def test_embedded_mode_invalidates_the_role_cache_too(start_server, sqlite_world: World) -> None:
    server = start_server(world=sqlite_world, CIRCLES_ROLE_CACHE_SECONDS="3600")
    circle = Circle(sqlite_world)
    async with (
        await circle.client(server, circle.owner) as owner,
        await circle.client(server, circle.member) as member,
    ):
        assert await value(member, "CALLER_ROLE") == "member"
        assert await value(owner, f'circle::remove_member("{circle.member.pubkey}")') is True
        assert (await play(member, "1"))["error"]["code"] == FORBIDDEN


async def test_embedded_mode_hears_a_change_a_management_command_makes(
    start_server, sqlite_world: World
) -> None:
    """On SQLite an embedded server shares the role read at sign-in across its connections; a
    change made in another process (`manage.py add_member`) reaches it through the notice file
    beside the database, so the next sign-in has the new role (cached for an hour otherwise)."""
    server = start_server(world=sqlite_world, CIRCLES_ROLE_CACHE_SECONDS="3600")
    circle = Circle(sqlite_world)
    for _ in range(2):  # the second sign-in reuses the first one's read
        async with await circle.client(server, circle.other) as other:
            assert (await other.call("whoami"))["role"] == "guest"
    env = server_env(sqlite_world.database_url)
    manage(env, "add_member", circle.key, circle.other.pubkey, "--role", "member")
    async with await circle.client(server, circle.other) as other:
        assert (await other.call("whoami"))["role"] == "member"
        assert await value(other, "CALLER_ROLE") == "member"
