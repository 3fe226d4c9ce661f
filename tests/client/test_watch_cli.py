"""`circles watch COLLECTION` against the fake of tests/client/fake_records.py.

In a thread (`main` runs its own loop, as from a shell) for what it prints, and as a real
subprocess for how it ends: SIGINT (Ctrl+C) exits 130, the reader of its stdout going away
(`| head -n 1`) exits 0 without a traceback. The real server: tests/e2e/test_client_watch.py.
"""

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest

from circles_client.cli import main
from tests.client.fake_records import FakeLiveCircle

KEY_HEX = "55" * 32


@pytest.fixture
async def circle() -> AsyncIterator[FakeLiveCircle]:
    fake = FakeLiveCircle()
    await fake.start()
    yield fake
    if fake.server is not None:
        await fake.stop()


@pytest.fixture
def environment(monkeypatch, circle: FakeLiveCircle) -> dict[str, str]:
    for name in ("CIRCLES_KEY_FILE", "CIRCLES_URL", "CIRCLES_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CIRCLES_URL", circle.url)
    monkeypatch.setenv("CIRCLES_KEY", KEY_HEX)
    return dict(os.environ)


async def circles(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def watching(circle: FakeLiveCircle) -> bool:
    return any(c.subscriptions for c in circle.connections if c.ws.state.name == "OPEN")


async def test_prints_one_json_line_per_change_and_stops_after_count(
    circle: FakeLiveCircle, environment, capsys
) -> None:
    await circle.put("notes", "old", {"n": 0})
    running = asyncio.create_task(circles("watch", "notes", "--prefix", "k", "--count", "3"))
    await until(lambda: watching(circle))
    await circle.put("notes", "k1", {"n": 1})
    await circle.put("notes", "x", {"n": 2})  # not under the prefix
    await circle.delete("notes", "k1")
    await circle.drop_all()  # a restart in the middle: it resumes after the last line printed
    await until(lambda: len(circle.connections) == 2 and watching(circle))
    await circle.put("notes", "k3", {"n": 3})
    assert await asyncio.wait_for(running, 5) == 0
    out, err = capsys.readouterr()
    changes = [json.loads(line) for line in out.splitlines()]
    assert [(c["seq"], c["key"], c["op"]) for c in changes] == [
        (2, "k1", "put"),
        (4, "k1", "delete"),
        (5, "k3", "put"),
    ]
    assert out.splitlines()[0] == json.dumps(changes[0], separators=(",", ":"))  # compact lines
    assert err.splitlines()[0] == "watching notes (keys k…) after seq 1"
    subscribes = [p for p in circle.params_of("subscribe") if p.get("topic") == "records"]
    assert [p["since"] for p in subscribes] == [1, 4]


async def test_since_replays_the_kept_changes(circle: FakeLiveCircle, environment, capsys) -> None:
    for n in range(3):
        await circle.put("notes", f"k{n}", {"n": n})
    assert await asyncio.wait_for(circles("watch", "notes", "--since", "1", "--count", "2"), 5) == 0
    assert [json.loads(line)["seq"] for line in capsys.readouterr().out.splitlines()] == [2, 3]
    assert "records_head" not in circle.methods()


async def test_compacted_exits_1_with_a_hint(circle: FakeLiveCircle, environment, capsys) -> None:
    for n in range(3):
        await circle.put("notes", f"k{n}", {"n": n})
    circle.compact(3)
    assert await circles("watch", "notes", "--since", "0") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "error: ChangesCompacted: subscribe: Changes compacted (-32006): oldest=3, head=3" in err
    assert "--since 3" in err and 'db::list("notes", 1000)' in err


async def test_refusals_and_usage(circle: FakeLiveCircle, environment, capsys) -> None:
    assert await circles("watch", "notes", "--since", "9") == 1
    assert "InvalidParams" in capsys.readouterr().err
    circle.forbidden = True
    assert await circles("watch", "notes") == 1
    assert "Forbidden" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["watch", "notes", "--since", "-1"])
    assert usage.value.code == 2
    assert "must be >= 0" in capsys.readouterr().err


async def subprocess_watch(environment: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "circles_client",
        "watch",
        "notes",
        stdin=asyncio.subprocess.DEVNULL,  # not a terminal: end of input does not end it
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )


async def test_ctrl_c_exits_130(circle: FakeLiveCircle, environment) -> None:
    process = await subprocess_watch(environment)
    try:
        assert process.stderr is not None and process.stdout is not None
        first = await asyncio.wait_for(process.stderr.readline(), 10)
        assert first.startswith(b"watching notes after seq 0")
        await circle.put("notes", "a", {"n": 1})
        assert json.loads(await asyncio.wait_for(process.stdout.readline(), 5))["key"] == "a"
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 130
        assert b"Traceback" not in await process.stderr.read()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_reader_that_goes_away_ends_it_quietly(circle: FakeLiveCircle, environment) -> None:
    process = await subprocess_watch(environment)
    try:
        assert process.stderr is not None and process.stdout is not None
        await asyncio.wait_for(process.stderr.readline(), 10)
        await circle.put("notes", "a", {"n": 1})
        await asyncio.wait_for(process.stdout.readline(), 5)
        process._transport.get_pipe_transport(1).close()  # type: ignore[attr-defined]  # `| head -n 1`
        async with asyncio.timeout(10):
            while process.returncode is None:  # a line may still fit in the pipe as it closes: write on
                await circle.put("notes", "b", {"n": 2})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 0.2)
        assert process.returncode == 0
        assert await process.stderr.read() == b""
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
