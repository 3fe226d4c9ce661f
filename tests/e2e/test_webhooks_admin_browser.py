"""The webhook events admin in a real headless Chromium: sign in, list, filter, open one, reprocess."""

import os
import shutil
import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import World
from tests.e2e.webhook_support import Database, create_circle, http_url, post_stripe, wait_for
from tests.helpers.browser import CSP_WATCH, csp_violations, headless_chromium
from tests.helpers.keys import WalletKey
from tests.helpers.processes import manage, server_env
from tests.helpers.webhooks import payment_intent, stripe_event

pytestmark = pytest.mark.e2e

SECRET = "whsec_admin_browser"
PASSWORD = "browser-test-password"


@pytest.fixture(scope="module")
def browser():
    with headless_chromium(1400, 1000) as driver:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_WATCH})
        yield driver


@pytest.fixture(scope="module")
def operator(world: World) -> str:
    """A superuser in the end-to-end database (made with createsuperuser, as an operator would)."""
    name = f"op{uuid.uuid4().hex[:6]}"
    env = server_env(world.database_url, DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    manage(env, "createsuperuser", "--noinput", "--username", name, "--email", f"{name}@example.org")
    return name


def test_operator_filters_opens_and_reprocesses_an_event(
    start_server, world: World, operator: str, browser, tmp_path
) -> None:
    db = Database(world)
    circle = create_circle(world, "webhooks-admin", WalletKey.named("e2e-webhooks-admin").pubkey)
    base = http_url(start_server(STRIPE_WEBHOOK_SECRET=SECRET))  # embedded mode: runs in process
    event = stripe_event(
        "payment_intent.succeeded", payment_intent("pi_admin"), id=f"evt_admin_{uuid.uuid4().hex[:6]}"
    )
    assert post_stripe(base, circle, event, SECRET)[0] == 200
    assert post_stripe(base, circle, stripe_event(), "whsec_wrong")[0] == 401  # a rejected row too
    wait_for(lambda: (row := db.event("stripe", event["id"])) and row["status"] == "processed")
    wait = WebDriverWait(browser, 15)

    browser.get(f"{base}/admin/login/?next=/admin/webhooks/webhookevent/")
    browser.find_element(By.NAME, "username").send_keys(operator)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "result_list")))
    assert "webhook event" in browser.title.lower()
    stylesheet = browser.execute_script(
        "return getComputedStyle(document.getElementById('header')).backgroundColor"
    )
    assert stylesheet not in ("", "rgba(0, 0, 0, 0)")  # the admin's CSS was served

    browser.find_element(By.CSS_SELECTOR, "#changelist-filter a[href*='status__exact=processed']").click()
    wait.until(expected_conditions.url_contains("status__exact=processed"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert rows and all("processed" in row.text.lower() for row in rows)
    browser.find_element(By.ID, "searchbar").send_keys(event["id"] + "\n")
    wait.until(expected_conditions.url_contains("q=evt_admin"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == 1 and event["id"] in rows[0].text

    rows[0].find_element(By.CSS_SELECTOR, "th a").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "div.field-pretty_payload")))
    page = browser.find_element(By.ID, "content").text
    assert event["id"] in page and "pi_admin" in page and "stripe-signature" in page
    pretty = browser.find_element(By.CSS_SELECTOR, "div.field-pretty_payload pre")
    assert pretty.value_of_css_property("white-space") == "pre-wrap"  # from webhooks/admin.css
    assert csp_violations(browser) == []  # the admin pages so far, under the server's CSP
    browser.save_screenshot(str(tmp_path / "webhook-event.png"))
    browser.back()

    wait.until(expected_conditions.presence_of_element_located((By.ID, "result_list")))
    browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr input.action-select").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("reprocess")
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    message = wait.until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li"))
    )
    assert "1 events queued again" in message.text
    assert csp_violations(browser) == []
    browser.save_screenshot(str(tmp_path / "webhook-reprocessed.png"))
    circle_id = db.circle_id(circle)
    runs = "SELECT count(*) FROM executor_scriptrun WHERE source = 'webhook:stripe' AND circle_id = ?"
    wait_for(lambda: db.query(runs, circle_id)[0][0] == 2)  # the first run and the reprocessed one
    wait_for(lambda: db.event("stripe", event["id"])["status"] == "processed")
    if os.environ.get("WEBHOOK_SCREENSHOT_DIR"):  # to look at them after the run
        for shot in tmp_path.glob("*.png"):
            shutil.copy(shot, os.environ["WEBHOOK_SCREENSHOT_DIR"])
