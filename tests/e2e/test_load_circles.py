"""`manage.py load_circles` on a fresh PostgreSQL database, then the circles used over a real server.

Three circles in TOML (one with a generated key, one with an init file, one with an inline init
script), loaded twice (the second load changes nothing), changed and loaded again, then broken
files refused with nothing changed. `dumpdata` of the circles and runs is the database's state.
"""

import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers.keys import WalletKey
from tests.helpers.postgres_server import PostgresServer
from tests.helpers.processes import manage, server_env
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e

BETA, GAMMA = WalletKey.named("load-beta"), WalletKey.named("load-gamma")
ANN, BOB, CAT = (WalletKey.named(f"load-{who}") for who in ("ann", "bob", "cat"))

ALPHA_INIT = """
db::put("notes", "welcome", #{ text: "hello from init", by: CALLER_ROLE });
circle::add_member("%s", "admin", "Cat");
"""

FILE = """
[[circles]]
name = "alpha"
allow_guests = false
init = "alpha.rhai"
members = [{ key = "%(ann)s", role = "member", name = "Ann" }]

[[circles]]
name = "beta"
pubkey = "%(beta)s"
description = "the second"
init_script = 'db::put("config", "main", #{ plan: "free" }); db::count("config")'
members = [{ key = "%(bob_address)s", role = "admin" }]

[[circles]]
name = "gamma"
pubkey = "%(gamma)s"
allow_guests = true
"""


@pytest.fixture(scope="module")
def database(postgres_server: PostgresServer) -> str:
    url = postgres_server.create_database("load")
    manage(server_env(url), "migrate", "--noinput", "-v0")
    return url


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("circles-file")
    (folder / "alpha.rhai").write_text(ALPHA_INIT % CAT.pubkey)
    return folder


def write(folder: Path, text: str, name: str = "circles.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def the_file(**changes: str) -> str:
    values = {"ann": ANN.pubkey, "beta": BETA.pubkey, "gamma": GAMMA.pubkey, "bob_address": BOB.address}
    return FILE % {**values, **changes}


def load(database: str, path: Path, *extra: str) -> subprocess.CompletedProcess:
    return manage(server_env(database), "load_circles", str(path), *extra, check=False)


def state(database: str) -> list:
    """Everything load_circles may touch, as the database holds it."""
    out = manage(server_env(database), "dumpdata", "circles", "executor", "--indent", "0").stdout
    return sorted(json.dumps(row, sort_keys=True) for row in json.loads(out))


async def signed_in(server: str, circle: str, key: WalletKey) -> RpcClient:
    client = await RpcClient.connect(f"{server}/{circle}")
    await client.sign_in(key)
    return client


async def play(client: RpcClient, script: str):
    response = await client.request("play", {"script": script}, timeout=30)
    return response["result"]["value"] if "result" in response else response["error"]


@pytest.fixture(scope="module")
def loaded(database: str, folder: Path) -> dict[str, str]:
    """The first load: its output, the generated alpha key pair."""
    result = load(database, write(folder, the_file()))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    alpha = re.fullmatch(r"created alpha: (0[23][0-9a-f]{64}) \(init run [0-9a-f-]{36}\)", lines[0])
    private = re.fullmatch(r"  owner private key \(shown once, keep it secret\): ([0-9a-f]{64})", lines[1])
    assert alpha and private, result.stdout
    assert re.fullmatch(rf"created beta: {BETA.pubkey} \(init run [0-9a-f-]{{36}}\)", lines[2])
    assert lines[3] == f"created gamma: {GAMMA.pubkey}" and len(lines) == 4
    return {"alpha": alpha.group(1), "alpha_private": private.group(1)}


@pytest.fixture(scope="module")
def server(start_server, database: str) -> str:
    return start_server(world=SimpleNamespace(database_url=database))


async def test_three_circles_are_created_and_their_init_scripts_ran_as_the_owner(loaded, server) -> None:
    alpha_owner = WalletKey(loaded["alpha_private"])
    assert alpha_owner.pubkey == loaded["alpha"]
    async with await signed_in(server, loaded["alpha"], alpha_owner) as owner:
        assert await play(owner, 'db::get("notes", "welcome")') == {"text": "hello from init", "by": "owner"}
        listed = await play(owner, "circle::members()")
        rows = [(m["pubkey"], m["role"], m["name"]) for m in listed]
        assert rows[0] == (alpha_owner.pubkey, "owner", "")
        assert sorted(rows[1:]) == sorted([(ANN.pubkey, "member", "Ann"), (CAT.pubkey, "admin", "Cat")])
    async with await signed_in(server, loaded["alpha"], ANN) as ann:
        assert await play(ann, "CALLER_ROLE") == "member"
    async with await signed_in(server, BETA.pubkey, BOB) as bob:  # added by address, signs in by key
        assert await play(bob, "CALLER_ROLE") == "admin"
        assert await play(bob, 'db::get("config", "main")') == {"plan": "free"}
        info = await play(bob, "circle::info()")
        assert (info["name"], info["description"], info["allow_guests"]) == ("beta", "the second", False)
    async with await signed_in(server, GAMMA.pubkey, CAT) as guest:
        assert await play(guest, "CALLER_ROLE") == "guest"  # gamma lets guests play


def test_a_second_load_changes_nothing(loaded, database: str, folder: Path) -> None:
    before = state(database)
    result = load(database, write(folder, the_file()))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"unchanged alpha: {loaded['alpha']}",
        f"unchanged beta: {BETA.pubkey}",
        f"unchanged gamma: {GAMMA.pubkey}",
    ]
    assert "private key" not in result.stdout and state(database) == before  # no init ran again


async def test_a_changed_file_is_applied(loaded, database: str, folder: Path, server) -> None:
    changed = (
        the_file()
        .replace('name = "beta"', 'name = "beta renamed"')
        .replace('role = "admin" }]', f'role = "member" }}, {{ key = "{CAT.address}", role = "guest" }}]')
        .replace("allow_guests = true", "allow_guests = false")
    )
    result = load(database, write(folder, changed))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"unchanged alpha: {loaded['alpha']}"
    assert lines[1].startswith(f"updated beta renamed: {BETA.pubkey}: name, ")
    assert "admin→member" in lines[1] and "guest" in lines[1]
    assert lines[2] == f"updated gamma: {GAMMA.pubkey}: allow_guests"
    async with await signed_in(server, BETA.pubkey, BOB) as bob:
        assert await play(bob, "CALLER_ROLE") == "member"
        assert (await play(bob, "circle::info()"))["name"] == "beta renamed"
        assert await play(bob, 'db::list("config").map(|r| r.version)') == [1]  # its init did not run again
    async with await signed_in(server, BETA.pubkey, CAT) as cat:  # an invited guest
        assert await play(cat, "CALLER_ROLE") == "guest"
    async with await signed_in(server, GAMMA.pubkey, CAT) as cat:
        assert (await play(cat, "1"))["code"] == -32003  # gamma no longer lets guests play
    again = load(database, write(folder, changed))
    assert [line.split(":")[0] for line in again.stdout.splitlines()] == [
        "unchanged alpha",
        "unchanged beta renamed",
        "unchanged gamma",
    ]


def test_each_change_records_who_made_it_and_from_which_run(loaded, database: str) -> None:
    script = (
        "from circles.models import MembershipChange as C; "
        "print([(c.source, c.changed_by, c.action, c.subject[:12], c.run_id is not None) "
        "for c in C.objects.filter(circle__name='alpha').order_by('at', 'id')])"
    )
    out = manage(server_env(database), "shell", "-c", script).stdout.strip().splitlines()[-1]
    assert out == str(
        [
            ("load_circles", "load_circles", "added", ANN.pubkey[:12], False),
            ("init", loaded["alpha"], "added", CAT.pubkey[:12], True),
        ]
    )


DELTA = '\n[[circles]]\nname = "delta"\n'
BROKEN = [
    ("replace", 'role = "member", name = "Ann"', 'role = "owner", name = "Ann"'),
    ("replace", f'pubkey = "{GAMMA.pubkey}"', 'pubkey = "03zz"'),
    ("append", DELTA + 'colour = "red"\n', ""),
    ("append", DELTA + 'init = "missing.rhai"\n', ""),
    ("append", '\n[[circles]]\nname = "alpha"\n', ""),
    ("replace", "[[circles]]", "[[circles]"),
    ("append", DELTA + 'init_script = """db::put("a", "b", #{});\nthrow "no"\n"""\n', ""),
]
SAYS = [
    'circle 1 ("alpha"): members[1]: role must be admin, member or guest',
    'circle 3 ("gamma"): pubkey:',
    "circle 4 (\"delta\"): unknown field 'colour'",
    'circle 4 ("delta"): init: cannot read',
    'circle 4 ("alpha"): same name as circle 1 ("alpha")',
    "not valid TOML",
    'circle 4 ("delta"): the init script failed at line 2, column 1: [throw] no',
]


@pytest.mark.parametrize(("broken", "says"), list(zip(BROKEN, SAYS, strict=True)))
def test_a_broken_file_is_refused_naming_the_entry_and_nothing_changes(
    loaded, database: str, folder: Path, broken: tuple[str, str, str], says: str
) -> None:
    before = state(database)
    # Each broken file also renames beta and flips gamma: neither may happen.
    text = (
        the_file()
        .replace('name = "beta"', 'name = "beta 2"')
        .replace("allow_guests = true", "allow_guests = false")
    )
    how, what, replacement = broken
    text = text.replace(what, replacement, 1) if how == "replace" else text + what
    result = load(database, write(folder, text))
    assert result.returncode == 1, result.stdout
    assert says in result.stderr and "nothing was changed" in result.stderr, result.stderr
    assert state(database) == before


def test_a_json_file_loads_the_same_way(database: str, folder: Path) -> None:
    key = WalletKey.named("load-json")
    entries = {"circles": [{"name": "json one", "pubkey": key.pubkey, "members": [{"key": ANN.address}]}]}
    path = write(folder, json.dumps(entries), "circles.json")
    assert load(database, path).stdout.splitlines() == [f"created json one: {key.pubkey}"]
    assert load(database, path).stdout.splitlines() == [f"unchanged json one: {key.pubkey}"]
    bare = write(folder, json.dumps(entries["circles"] + [{"name": 5}]), "bare.json")
    result = load(database, bare)
    assert result.returncode == 1 and "circle 2: name is required" in result.stderr
