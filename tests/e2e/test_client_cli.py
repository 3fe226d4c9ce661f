"""`python -m circles_client` as a subprocess against a real server (uvicorn, Redis, rhai_worker)."""

import json
import os
import stat
import subprocess
import uuid

import pytest

from tests.e2e.conftest import World
from tests.helpers.keys import WalletKey
from tests.helpers.processes import PYTHON, REPO, free_port
from tests.helpers.redis_server import RedisServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def queue_settings(redis_server: RedisServer) -> dict[str, str]:
    return {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e-cli:{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="module")
def server(start_server, start_workers, queue_settings) -> str:
    start_workers(**queue_settings)
    return start_server(**queue_settings)


@pytest.fixture
def key_file(tmp_path, world: World):
    """Write a wallet's private key to a file, as `circles keygen -o` would."""

    def write(wallet: WalletKey) -> str:
        path = tmp_path / f"key-{wallet.pubkey[:8]}"
        path.write_text(wallet.private_hex + "\n")
        return str(path)

    return write


def circles(*args: str, input: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run the command line with only the CIRCLES_* variables given here."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("CIRCLES_")}
    clean["CIRCLES_HISTORY"] = os.devnull
    return subprocess.run(
        [PYTHON, "-m", "circles_client", *args],
        env={**clean, **env},
        cwd=REPO,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keygen_writes_a_private_key_file_and_prints_the_public_side(tmp_path) -> None:
    path = tmp_path / "me.key"
    done = circles("keygen", "-o", str(path))
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["pubkey"].startswith(("02", "03")) and shown["address"].startswith("0x")
    assert "private_key" not in shown and stat.S_IMODE(path.stat().st_mode) == 0o600
    again = circles("keygen", "-o", str(path))
    assert again.returncode == 2 and "exists" in again.stderr
    printed = json.loads(circles("keygen").stdout)
    assert len(printed["private_key"]) == 64


def test_whoami_with_a_key_file_from_the_environment(server: str, world: World, key_file) -> None:
    done = circles("whoami", CIRCLES_URL=f"{server}/{world.circle}", CIRCLES_KEY_FILE=key_file(world.member))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1  # piped: one compact line
    assert json.loads(done.stdout) == {
        "circle": world.circle,
        "authenticated": True,
        "pubkey": world.member.pubkey,
        "role": "member",
    }


def test_flags_and_address_sign_in(server: str, world: World, key_file) -> None:
    url = f"{server}/{world.circle}"
    done = circles("--url", url, "whoami", "--key-file", key_file(world.admin), "--address")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["pubkey"] == world.admin.pubkey


def test_http_url_of_the_console_works_too(server: str, world: World) -> None:
    url = server.replace("ws://", "http://") + f"/{world.circle}"
    done = circles("whoami", CIRCLES_URL=url, CIRCLES_KEY=world.owner.private_hex)
    assert json.loads(done.stdout)["role"] == "owner", done.stderr


def test_play_an_expression_a_file_and_stdin(server: str, world: World, key_file, tmp_path) -> None:
    env = {"CIRCLES_URL": f"{server}/{world.circle}", "CIRCLES_KEY_FILE": key_file(world.member)}
    assert circles("play", "-e", "40 + 2", **env).stdout == "42\n"

    script = tmp_path / "hello.rhai"
    script.write_text('print("hello from a file");\n#{ who: CALLER_ROLE, n: [1, 2] }\n')
    done = circles("play", str(script), **env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"who": "member", "n": [1, 2]}
    assert done.stderr == "hello from a file\n"  # logs go to stderr: stdout stays JSON

    done = circles("play", "-", "--full", input="let x = 10;\nx * 2", **env)
    result = json.loads(done.stdout)
    assert result["output"] == "20" and result["value"] == 20 and uuid.UUID(result["run_id"])


def test_failures_are_one_line_with_an_exit_status(server: str, world: World, key_file) -> None:
    env = {"CIRCLES_URL": f"{server}/{world.circle}", "CIRCLES_KEY_FILE": key_file(world.member)}
    failed = circles("play", "-e", 'let a = 1;\nlet b = a + "x" * 2;', **env)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.count("\n") == 1
    assert failed.stderr.startswith("error: ExecutionError: runtime error at line 2, column ")

    url = f"{server}/{world.circle}"
    guest = circles("play", "-e", "1", CIRCLES_URL=url, CIRCLES_KEY=world.guest.private_hex)
    assert guest.returncode == 1 and guest.stderr.startswith("error: Forbidden:")

    signed_out = circles("play", "-e", "1", CIRCLES_URL=f"{server}/{world.circle}")
    assert signed_out.returncode == 1 and "AuthenticationRequired" in signed_out.stderr

    missing = circles("whoami", CIRCLES_URL=f"{server}/{world.inactive_circle}")
    assert missing.returncode == 3 and missing.stderr.startswith("error: CircleNotFound:")
    assert "4404" in missing.stderr

    nobody = circles("whoami", CIRCLES_URL=f"ws://127.0.0.1:{free_port()}/{world.circle}")
    assert nobody.returncode == 3 and "cannot connect" in nobody.stderr

    assert circles("whoami").returncode == 2  # no URL
    bad_key = circles("whoami", CIRCLES_URL=f"{server}/{world.circle}", CIRCLES_KEY="not-hex")
    assert bad_key.returncode == 2 and "not-hex" not in bad_key.stderr
    assert circles("play", "-e", "1", "-").returncode == 2  # a script from two places


def test_repl_runs_each_entry_and_continues_open_ones(server: str, world: World, key_file) -> None:
    entries = "\n".join(
        [
            "let a = 20; \\",  # a trailing backslash continues the entry
            "a + 1",
            "{",  # an open brace too
            '  print("inside");',
            "  2 * 3",
            "}",
            'throw "boom"',
            ".whoami",
            "7",
        ]
    )
    env = {"CIRCLES_URL": f"{server}/{world.circle}", "CIRCLES_KEY_FILE": key_file(world.member)}
    done = circles("repl", input=entries + "\n", **env)
    assert done.returncode == 1  # not a terminal and one entry failed
    lines = done.stdout.splitlines()
    assert lines[:2] == ["21", "6"] and lines[-1] == "7"
    assert json.loads(lines[2])["role"] == "member"
    assert "inside" in done.stderr and "error: ExecutionError: throw error at line 1" in done.stderr
