"""`circles member …` and `circles circle …` as subprocesses against uvicorn, Redis and a real rhai_worker.

They are scripts run with `play` (no method of their own), so the server's membership rules apply:
the owner manages everything, an admin members only, a member nothing (exit status 1).
"""

import json
import uuid

import pytest

from tests.e2e.conftest import World
from tests.e2e.test_client_cli import circles
from tests.helpers.keys import WalletKey
from tests.helpers.processes import manage, server_env
from tests.helpers.redis_server import RedisServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def queue_settings(redis_server: RedisServer) -> dict[str, str]:
    return {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e-cli-members:{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="module")
def server(start_server, start_workers, queue_settings) -> str:
    start_workers(**queue_settings)
    return start_server(**queue_settings)


@pytest.fixture
def keys(world: World) -> dict[str, WalletKey]:
    """A circle of this test's own: its owner and an admin, and two keys not in it yet."""
    tag = uuid.uuid4().hex[:8]
    keys = {who: WalletKey.named(f"cli-members-{tag}-{who}") for who in ("owner", "admin", "ann", "bob")}
    env = server_env(world.database_url)
    manage(env, "create_circle", "--name", f"cli-{tag}", "--pubkey", keys["owner"].pubkey)
    manage(env, "add_member", keys["owner"].pubkey, keys["admin"].pubkey, "--role", "admin")
    return keys


def as_(server: str, keys: dict[str, WalletKey], who: str, *args: str):
    url = f"{server}/{keys['owner'].pubkey}"
    return circles(*args, CIRCLES_URL=url, CIRCLES_KEY=keys[who].private_hex)


def ok(done) -> object:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_owner_lists_adds_re_roles_and_removes_members(server: str, keys) -> None:
    ann, bob = keys["ann"], keys["bob"]
    assert ok(as_(server, keys, "owner", "member", "add", ann.pubkey, "--name", 'Ann "the first"')) == {
        "added": True
    }
    assert ok(as_(server, keys, "owner", "member", "add", ann.pubkey)) == {"added": False}
    assert ok(as_(server, keys, "owner", "member", "add", bob.address, "--role", "guest")) == {"added": True}
    assert ok(as_(server, keys, "owner", "member", "role", ann.pubkey, "admin")) == {"changed": True}
    listed = ok(as_(server, keys, "owner", "member", "list"))
    assert listed[0] == {
        "pubkey": keys["owner"].pubkey,
        "address": keys["owner"].address,
        "role": "owner",
        "name": "",
    }
    assert {
        "pubkey": ann.pubkey,
        "address": ann.address,
        "role": "admin",
        "name": 'Ann "the first"',
    } in listed
    assert {"pubkey": None, "address": bob.address, "role": "guest", "name": ""} in listed
    assert ok(as_(server, keys, "ann", "whoami"))["role"] == "admin"  # the new admin signs in as one
    assert ok(as_(server, keys, "owner", "member", "remove", bob.address)) == {"removed": True}
    assert ok(as_(server, keys, "owner", "member", "remove", bob.address)) == {"removed": False}
    assert len(ok(as_(server, keys, "owner", "member", "list"))) == 3


def test_the_owner_shows_and_updates_the_circle(server: str, keys) -> None:
    info = ok(as_(server, keys, "owner", "circle", "info"))
    assert info["id"] == keys["owner"].pubkey and info["allow_guests"] is False and info["members"] == 1
    changed = ok(
        as_(server, keys, "owner", "circle", "update", "--name", "renamed\tby CLI", "--allow-guests")
    )
    assert changed["name"][1] == "renamed\tby CLI" and changed["allow_guests"] == [False, True]
    assert ok(as_(server, keys, "owner", "circle", "update", "--description", "d"))["description"] == [
        "",
        "d",
    ]
    info = ok(as_(server, keys, "ann", "circle", "info"))  # a guest may play now, and read it
    assert (info["name"], info["description"], info["allow_guests"]) == ("renamed\tby CLI", "d", True)
    assert ok(as_(server, keys, "owner", "circle", "update", "--no-allow-guests")) == {
        "allow_guests": [True, False]
    }
    nothing = as_(server, keys, "owner", "circle", "update")
    assert nothing.returncode == 2 and "give --name" in nothing.stderr


def test_an_admin_manages_members_but_not_admins_nor_settings(server: str, keys) -> None:
    assert ok(as_(server, keys, "admin", "member", "add", keys["ann"].pubkey)) == {"added": True}
    for args, says in (
        (("member", "add", keys["bob"].pubkey, "--role", "admin"), "an admin may not add admins"),
        (("member", "role", keys["ann"].pubkey, "admin"), "an admin may not make admins"),
        (("member", "remove", keys["owner"].pubkey), "the owner cannot be removed"),
        (("circle", "update", "--name", "mine"), "may not change the circle's settings"),
    ):
        done = as_(server, keys, "admin", *args)
        assert done.returncode == 1 and "ExecutionError" in done.stderr and says in done.stderr, done.stderr
        assert done.stdout == ""


def test_a_member_is_refused_and_a_stranger_forbidden(server: str, keys) -> None:
    ok(as_(server, keys, "owner", "member", "add", keys["ann"].pubkey))
    done = as_(server, keys, "ann", "member", "remove", keys["admin"].pubkey)
    assert done.returncode == 1
    assert (
        "circle::remove_member: role member may not change membership; owner or admin needed" in done.stderr
    )
    stranger = as_(server, keys, "bob", "member", "list")
    assert stranger.returncode == 1 and "Forbidden" in stranger.stderr
