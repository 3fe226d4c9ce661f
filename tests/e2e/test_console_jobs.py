"""The console's jobs panel in headless Chromium against uvicorn + Redis + a real rhai_worker.

A member runs a job from the editor and sees it finish with its output and logs, stops a
`loop {}` job from its row, deletes one, and sees a job its own CLI session made appear; the
owner ticks "every caller's" and sees the member's jobs. All of it under the server's
Content-Security-Policy without a violation. The same panel against the fake server:
tests/client/test_console_jobs_panel.py.

Written before the server side existed; run it once both sides are merged.
"""

import asyncio
import uuid

import pytest
from selenium.webdriver.common.by import By

from circles_client import SigningKey, connect
from tests.client.console_page import query, set_script
from tests.client.test_console_jobs_panel import click, details, row_status
from tests.e2e.conftest import World
from tests.e2e.test_console import WALLET, answer_sign_request, state, wait
from tests.helpers.browser import CSP_WATCH, csp_violations, headless_chromium
from tests.helpers.keys import WalletKey
from tests.helpers.redis_server import RedisServer

pytestmark = pytest.mark.e2e

LONG_RUNS = {"CIRCLES_SCRIPT_MAX_OPERATIONS": "1000000000000"}


@pytest.fixture(scope="module")
def queue_settings(redis_server: RedisServer) -> dict[str, str]:
    return {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e-console-jobs:{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="module")
def server(start_server, start_workers, queue_settings) -> str:
    start_workers(**queue_settings, **LONG_RUNS, concurrency=2, job_slots=1)
    return start_server(**queue_settings)


@pytest.fixture
def browser():
    with headless_chromium(1300, 1000) as driver:
        yield driver


def open_as(browser, server: str, world: World, wallet: WalletKey) -> None:
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WALLET % wallet.address})
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_WATCH})
    browser.get(f"{server.replace('ws://', 'http://')}/{world.circle}")
    wait(browser, lambda d: state(d) == "connected")
    browser.find_element(By.ID, "sign-in").click()
    answer_sign_request(browser, wallet)
    wait(browser, lambda d: state(d) == "signed-in")
    wait(browser, lambda d: d.find_element(By.ID, "jobs").get_attribute("data-subscription"))


def newest_job(browser) -> str:
    return wait(browser, lambda d: query(d, "#jobs-list tr.job", "node.dataset.job"))


async def job_made_elsewhere(server: str, world: World) -> str:
    async with connect(f"{server}/{world.circle}", SigningKey.from_hex(world.member.private_hex)) as client:
        job = await client.create_job("6 * 7")
        await job.start()
        return job.id


def test_a_member_runs_stops_and_deletes_jobs_from_the_page(browser, server: str, world: World) -> None:
    open_as(browser, server, world, world.member)
    set_script(browser, 'print("from the page");\n40 + 2')
    browser.find_element(By.ID, "job-run").click()
    job_id = newest_job(browser)
    wait(browser, lambda d: row_status(d, job_id) == "finished", 30)
    click(browser, job_id, "details")
    wait(browser, lambda d: details(d, job_id, "output") == "42")
    wait(browser, lambda d: details(d, job_id, "logs") == "from the page")

    set_script(browser, "loop {}")
    browser.find_element(By.ID, "job-timeout").send_keys("600")
    browser.find_element(By.ID, "job-run").click()
    wait(browser, lambda d: newest_job(d) != job_id)
    looping = newest_job(browser)
    wait(browser, lambda d: row_status(d, looping) == "started", 30)
    click(browser, looping, "stop")
    wait(browser, lambda d: row_status(d, looping) == "error", 5)
    assert "stopped" in query(browser, f'tr.job[data-job="{looping}"] .job-status', "node.title")

    click(browser, job_id, "delete")
    wait(browser, lambda d: row_status(d, job_id) is None)

    elsewhere = asyncio.run(job_made_elsewhere(server, world))
    wait(browser, lambda d: row_status(d, elsewhere) == "finished", 30)
    assert browser.find_element(By.ID, "jobs-error").is_displayed() is False
    assert csp_violations(browser) == []


def test_the_owner_sees_every_callers_jobs(browser, server: str, world: World) -> None:
    elsewhere = asyncio.run(job_made_elsewhere(server, world))
    open_as(browser, server, world, world.owner)
    wait(browser, lambda d: d.find_element(By.ID, "jobs").get_attribute("data-loaded"))
    assert row_status(browser, elsewhere) is None  # the owner's own jobs first
    assert browser.find_element(By.ID, "jobs-all-label").is_displayed()
    browser.find_element(By.ID, "jobs-all").click()
    wait(browser, lambda d: row_status(d, elsewhere) == "finished", 30)
    assert csp_violations(browser) == []


def test_a_member_gets_no_every_callers_box(browser, server: str, world: World) -> None:
    open_as(browser, server, world, world.member)
    assert not browser.find_element(By.ID, "jobs-all-label").is_displayed()
