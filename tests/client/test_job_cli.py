"""`circles job …` against the in-process fake of tests/client/fake_jobs.py, and the progress display.

The command line runs in a thread (it has its own event loop, as from a shell) while the test's
loop serves it and moves the jobs. The real server is in tests/e2e/test_client_jobs.py.
"""

import asyncio
import io
import json
from collections.abc import AsyncIterator

import pytest

from circles_client.cli import main
from circles_client.job_progress import CLEAR_LINE, Progress
from tests.client.fake_jobs import FakeJobsCircle

KEY_HEX = "44" * 32


@pytest.fixture
async def circle() -> AsyncIterator[FakeJobsCircle]:
    fake = FakeJobsCircle()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def environment(monkeypatch, circle: FakeJobsCircle) -> None:
    for name in ("CIRCLES_KEY_FILE", "CIRCLES_URL", "CIRCLES_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CIRCLES_URL", circle.url)
    monkeypatch.setenv("CIRCLES_KEY", KEY_HEX)


async def circles(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def only_job(circle: FakeJobsCircle) -> str:
    (job_id,) = circle.jobs
    return job_id


async def test_run_shows_logs_on_stderr_and_the_output_on_stdout(
    circle: FakeJobsCircle, environment, capsys
) -> None:
    running = asyncio.create_task(
        circles("job", "run", "-e", "work()", "--time-limit", "30", "--env", "A=1=2")
    )
    await until(lambda: circle.jobs and circle.jobs[only_job(circle)]["status"] == "dispatched")
    job_id = only_job(circle)
    assert circle.jobs[job_id]["timeout"] == 30 and circle.jobs[job_id]["env_vars"] == {"A": "1=2"}
    await circle.advance(job_id, "started", logs="step 1\nstep 2")
    await circle.advance(job_id, "finished", output="all done", value="all done", logs="last words")
    assert await asyncio.wait_for(running, 5) == 0
    out, err = capsys.readouterr()
    assert out == "all done\n"
    lines = err.splitlines()
    assert lines[0].endswith(f"] job {job_id}: dispatched")  # piped: one line per change
    assert "step 1" in lines and "step 2" in lines and "last words" in lines  # the last, read after the end
    assert lines.index("step 1") < lines.index("last words")
    assert any(f"job {job_id}: started" in line for line in lines)
    assert lines[-1].startswith(f"job {job_id}: finished after ")


async def test_run_of_a_failed_job_exits_1_with_one_line(circle: FakeJobsCircle, environment, capsys) -> None:
    running = asyncio.create_task(circles("job", "run", "-e", "oops"))
    await until(lambda: circle.jobs and circle.jobs[only_job(circle)]["status"] == "dispatched")
    error = {"kind": "runtime", "message": "Variable not found: oops", "line": 1, "column": 1}
    await circle.advance(only_job(circle), "error", error=error)
    assert await asyncio.wait_for(running, 5) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1] == (
        "error: ExecutionError: runtime error at line 1, column 1: Variable not found: oops"
    )


async def test_create_start_status_output_logs_list_delete_clear(
    circle: FakeJobsCircle, environment, capsys
) -> None:
    assert await circles("job", "create", "-e", "1", "--after", "j0") == 0
    job_id = capsys.readouterr().out.strip()
    assert circle.jobs[job_id]["prerequisites"] == ["j0"]
    assert await circles("job", "status", job_id) == 0
    assert capsys.readouterr().out == "created\n"
    assert await circles("job", "start", job_id) == 0
    assert json.loads(capsys.readouterr().out) == {"success": True}
    assert await circles("job", "output", job_id) == 1
    err = capsys.readouterr().err
    assert "WrongJobState" in err and "status=dispatched" in err
    await circle.advance(job_id, "finished", output="1", value=1, logs="x")
    assert await circles("job", "output", job_id) == 0
    assert capsys.readouterr().out == "1\n"
    assert await circles("job", "logs", job_id) == 0
    assert capsys.readouterr().out == "x\n"
    assert await circles("job", "get", job_id) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "finished"
    assert await circles("job", "list", "--status", "finished", "--limit", "5") == 0
    assert [j["id"] for j in json.loads(capsys.readouterr().out)] == [job_id]
    assert await circles("job", "list", "--all") == 1
    assert "Forbidden" in capsys.readouterr().err
    assert await circles("job", "delete", job_id) == 0
    assert await circles("job", "status", job_id) == 1
    assert "JobNotFound" in capsys.readouterr().err
    await circles("job", "create", "-e", "2")
    capsys.readouterr()
    assert await circles("job", "clear") == 0
    assert json.loads(capsys.readouterr().out) == {"deleted": 1}


async def test_watch_one_job_prints_json_lines_until_it_ends(
    circle: FakeJobsCircle, environment, capsys
) -> None:
    assert await circles("job", "create", "-e", "1") == 0
    job_id = capsys.readouterr().out.strip()
    watching = asyncio.create_task(circles("job", "watch", job_id))
    printed: list[str] = []

    def read() -> list[str]:
        printed.extend(capsys.readouterr().out.splitlines())
        return printed

    # The state read after subscribing is printed first; a notification the test pushed before the
    # client had taken that read in would come first and make the read a step back (left out).
    await until(lambda: read())
    await circle.advance(job_id, "dispatched")
    await circle.advance(job_id, "finished", output="1", value=1)
    assert await asyncio.wait_for(watching, 5) == 0
    states = [json.loads(line) for line in read()]
    assert [s["status"] for s in states] == ["created", "dispatched", "finished"]


def test_bad_env_is_a_usage_error(capsys) -> None:
    assert (
        main(["job", "run", "-e", "1", "--url", "ws://127.0.0.1:9/c", "--key", KEY_HEX, "--env", "NOEQUALS"])
        == 2
    )
    assert "expected NAME=VALUE" in capsys.readouterr().err


# --- the progress display --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_piped_progress_is_one_line_per_change_and_per_log_line() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress("j1", stream, live=False, clock=clock)
    progress.show_status("created")  # not a change
    clock.now += 1.25
    progress.show_status("started")
    progress.show_status("started")
    progress.show_logs("a\nb")
    progress.show_missing_logs("a\nb\nc")
    clock.now += 1
    progress.finish("finished", 2000)
    assert stream.getvalue().splitlines() == [
        "[   1.2 s] job j1: started",
        "a",
        "b",
        "c",
        "job j1: finished after 2.2 s, ran 2.000 s",
    ]


def test_live_progress_redraws_its_line_below_the_logs() -> None:
    stream = io.StringIO()
    progress = Progress("j1", stream, live=True, clock=Clock())
    progress.show_status("started")
    progress.show_logs("hello")
    assert stream.getvalue() == (
        f"{CLEAR_LINE}[   0.0 s] job j1: started{CLEAR_LINE}hello\n[   0.0 s] job j1: started"
    )
