"""The console's jobs panel (console/static/console/jobs.js) in headless Chromium, against the fake.

The fake of tests/client/fake_jobs.py serves the console page and its scripts
(tests/client/console_page.py: the real template, a wallet double that signs at once). Checked:
run and create from the editor, live status from notifications, logs and output, stop, delete,
a job created elsewhere, and after a restart a new subscription and the status of a job that
finished while the page was disconnected. The same panel against the real server:
tests/e2e/test_console_jobs.py.
"""

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By

from tests.client.console_page import ADDRESS, Background, query, serve_console, set_script, sign_in, wait
from tests.client.fake_jobs import FakeJobsCircle
from tests.helpers.browser import headless_chromium


@pytest.fixture
def fake() -> Iterator[tuple[FakeJobsCircle, Background]]:
    background = Background()
    circle = FakeJobsCircle()
    serve_console(circle)
    background.run(circle.start())
    yield circle, background
    if circle.server is not None:
        background.run(circle.stop())
    background.close()


@pytest.fixture
def browser():
    with headless_chromium(1300, 1000) as driver:
        yield driver


# The panel redraws a job's rows on each change: read and click through the page's own DOM calls,
# never through a WebElement kept across a redraw.


def row_status(driver, job_id: str) -> str | None:
    return query(driver, f'tr.job[data-job="{job_id}"]', "node.dataset.status")


def click(driver, job_id: str, action: str) -> None:
    assert query(driver, f'tr.job[data-job="{job_id}"] button.{action}', "(node.click(), true)")


def details(driver, job_id: str, part: str) -> str | None:
    return query(driver, f'tr.job-details[data-job="{job_id}"] .{part}', "node.textContent")


def sign_in_for_jobs(driver, url: str) -> None:
    sign_in(driver, url)
    wait(driver, lambda d: d.find_element(By.ID, "jobs").get_attribute("data-subscription"))


def new_job(circle: FakeJobsCircle, known: set[str]) -> str:
    (job_id,) = set(circle.jobs) - known
    return job_id


def test_the_jobs_panel_follows_jobs_live(fake, browser) -> None:
    circle, background = fake
    sign_in_for_jobs(browser, circle.url.replace("ws://", "http://"))
    assert not browser.find_element(By.ID, "jobs").get_attribute("hidden")
    first_subscription = browser.find_element(By.ID, "jobs").get_attribute("data-subscription")

    # Run as job: created, started, its notifications move the row.
    set_script(browser, 'print("step 1");\n40 + 2')
    browser.find_element(By.ID, "job-run").click()
    wait(browser, lambda d: len(circle.jobs) == 1)
    job_id = new_job(circle, set())
    assert circle.jobs[job_id]["script"] == 'print("step 1");\n40 + 2'
    wait(browser, lambda d: row_status(d, job_id) == "dispatched")
    background.run(circle.advance(job_id, "started", logs="step 1"))
    wait(browser, lambda d: row_status(d, job_id) == "started")
    click(browser, job_id, "details")
    wait(browser, lambda d: details(d, job_id, "logs") == "step 1")
    background.run(circle.advance(job_id, "started", logs="step 2"))
    wait(browser, lambda d: details(d, job_id, "logs") == "step 1\nstep 2")
    background.run(circle.advance(job_id, "finished", output="42", value=42))
    wait(browser, lambda d: row_status(d, job_id) == "finished")
    wait(browser, lambda d: details(d, job_id, "output") == "42")
    reads = circle.methods().count("get_job_status") + circle.methods().count("list_jobs")
    assert reads == 1  # one list after subscribing; no polling

    # Create job (not started), then stop it: it ends error, kind stopped.
    browser.find_element(By.ID, "job-create").click()
    wait(browser, lambda d: len(circle.jobs) == 2)
    stopped = new_job(circle, {job_id})
    wait(browser, lambda d: row_status(d, stopped) == "created")
    click(browser, stopped, "stop")
    wait(browser, lambda d: row_status(d, stopped) == "error")
    assert "stopped" in query(browser, f'tr.job[data-job="{stopped}"] .job-status', "node.title")

    # Delete the finished one.
    click(browser, job_id, "delete")
    wait(browser, lambda d: row_status(d, job_id) is None)
    assert job_id not in circle.jobs

    # A job created elsewhere (another tab, the CLI) shows up when its first notification comes.
    elsewhere = background.run(created_elsewhere(circle, ADDRESS))
    wait(browser, lambda d: row_status(d, elsewhere) == "dispatched")

    # The server goes away; the job finishes meanwhile; the page comes back, subscribes again
    # (a new id) and shows the real status.
    background.run(circle.stop())
    background.run(circle.advance(elsewhere, "finished", output="1", value=1))
    background.run(circle.start())
    wait(
        browser,
        lambda d: (
            d.find_element(By.ID, "jobs").get_attribute("data-subscription") not in (None, first_subscription)
        ),
        30,
    )
    wait(browser, lambda d: row_status(d, elsewhere) == "finished")
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not [message for message in errors if "jobs.js" in message or "console.js" in message], errors


async def created_elsewhere(circle: FakeJobsCircle, caller: str) -> str:
    """A job of the same caller created and started on another connection of the fake."""
    job_id = "00000000-0000-4000-8000-000000000001"
    circle.jobs[job_id] = {
        "id": job_id,
        "caller_id": caller,
        "context_id": "circle",
        "script": "1",
        "timeout": 300,
        "env_vars": {},
        "prerequisites": [],
        "status": "created",
        "output": None,
        "value": None,
        "error": None,
        "logs_size": 0,
        "created_at": "2026-12-02T01:00:01.000000Z",
        "updated_at": "2026-12-02T01:00:01.000000Z",
        "started_at": None,
        "finished_at": None,
        "elapsed_ms": None,
        "_logs": "",
    }
    await circle.advance(job_id, "dispatched")
    return job_id
