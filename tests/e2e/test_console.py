"""The browser console in a real headless Chromium, against uvicorn + Redis + a real rhai_worker.

The page's wallet is a test double injected before any page script runs (CDP
`Page.addScriptToEvaluateOnNewDocument`): `eth_requestAccounts` answers the member's address
and each `personal_sign` waits in `window.__signRequests` until this test signs the text in
Python with the real key (eth_account) and resolves it, as a wallet would after a click.
The page's Math.random is a known sequence, so its jittered reconnect delays can be checked.
"""

import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import World
from tests.helpers.browser import CSP_WATCH, csp_violations, headless_chromium
from tests.helpers.keys import WalletKey
from tests.helpers.processes import server_env, start_asgi_server
from tests.helpers.redis_server import RedisServer

pytestmark = pytest.mark.e2e

WALLET = """
window.__signRequests = [];
window.ethereum = {
  isTestWallet: true,
  request({ method, params }) {
    if (method === "eth_requestAccounts" || method === "eth_accounts") return Promise.resolve(["%s"]);
    if (method === "personal_sign") {
      return new Promise((resolve, reject) => window.__signRequests.push({ params, resolve, reject }));
    }
    return Promise.reject(new Error("unsupported method " + method));
  },
};
"""


# The page's Math.random, replaced by a known sequence: the reconnect delays it draws can be checked.
RANDOM_SEQUENCE = [0.9, 0.1, 0.6, 0.3, 0.8, 0.2]
KNOWN_RANDOM = (
    f"(() => {{ const s = {RANDOM_SEQUENCE}; let i = 0; Math.random = () => s[i++ % s.length]; }})();"
)
# Every attempt's `data-retry` ("attempt delay_ms") as the page sets it.
WATCH_RETRIES = """
window.__retries = [];
const badge = document.getElementById("connection");
new MutationObserver(() => window.__retries.push(badge.dataset.retry))
  .observe(badge, { attributes: true, attributeFilter: ["data-retry"] });
"""


def jittered_delay(attempt: int) -> int:
    """console.js's delay before `attempt`: Math.random() times min(10 s, 0.5 s * 2^attempt)."""
    return round(RANDOM_SEQUENCE[attempt % len(RANDOM_SEQUENCE)] * min(10_000, 500 * 2**attempt))


@pytest.fixture(scope="module")
def queue_settings(redis_server: RedisServer) -> dict[str, str]:
    return {"REDIS_URL": redis_server.url, "CIRCLES_QUEUE_STREAM": f"e2e-console:{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="module")
def workers(start_workers, queue_settings):
    return [start_workers(**queue_settings)]


@pytest.fixture
def browser():
    with headless_chromium(1300, 760) as driver:
        yield driver


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait(driver, condition, timeout: float = 20.0):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def answer_sign_request(driver, wallet: WalletKey) -> str:
    """Wait for the page's personal_sign, check it, sign it with the real key and resolve it."""
    message_hex, address = wait(driver, lambda d: d.execute_script(
        "const r = window.__signRequests[0]; return r ? r.params : null;"
    ))  # fmt: skip
    assert address == wallet.address
    text = bytes.fromhex(message_hex.removeprefix("0x")).decode()
    assert f"Address: {wallet.address}" in text
    driver.execute_script("window.__signRequests.shift().resolve(arguments[0]);", "0x" + wallet.sign(text))
    return text


def state(driver) -> str:
    return driver.find_element(By.ID, "connection").get_attribute("data-state")


def set_script(driver, source: str) -> None:
    driver.execute_script(
        "const t = document.getElementById('script'); t.value = arguments[0];"
        "t.dispatchEvent(new Event('input'));",
        source,
    )


def test_console_page_and_unknown_circle(start_server, world: World) -> None:
    base = start_server().replace("ws://", "http://")
    status, page = http_get(f"{base}/{world.circle}")
    assert status == 200 and "console/console.js" in page and world.circle in page
    with urllib.request.urlopen(f"{base}/{world.circle}", timeout=10) as response:
        policy = response.headers["Content-Security-Policy"]
    assert policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert http_get(f"{base}/0x{world.circle.upper()}/")[0] == 200  # any key form, a trailing slash
    assert http_get(f"{base}/static/console/console.js")[0] == 200
    for missing in (world.inactive_circle, WalletKey.named("nobody").pubkey, "not-a-key"):
        status, page = http_get(f"{base}/{missing}")
        assert status == 404 and "Circle not found" in page
    assert http_get(f"{base}/admin/login/")[0] == 200  # the admin still wins


def test_sign_in_with_a_wallet_run_see_errors_and_reconnect(
    browser, world: World, queue_settings, workers, tmp_path: Path
) -> None:
    env = server_env(world.database_url, **queue_settings)
    server, port = start_asgi_server("uvicorn", env, tmp_path / "first.log")
    try:
        wallet = world.member  # a Member row by public key; the wallet signs in by address
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WALLET % wallet.address})
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_WATCH})
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": KNOWN_RANDOM})
        browser.get(f"http://127.0.0.1:{port}/{world.circle}")
        wait(browser, lambda d: state(d) == "connected")
        browser.execute_script(WATCH_RETRIES)

        browser.find_element(By.ID, "sign-in").click()
        answer_sign_request(browser, wallet)
        wait(browser, lambda d: state(d) == "signed-in")
        assert "member" in browser.find_element(By.ID, "identity").text
        assert wallet.pubkey in browser.find_element(By.ID, "identity").get_attribute("title")

        # The example script, run with Ctrl+Enter: its log line and its value.
        browser.find_element(By.ID, "script").send_keys(Keys.CONTROL, Keys.ENTER)
        ok = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#output .entry.ok"))[0]
        assert ok.find_element(By.CSS_SELECTOR, ".value").text == "20"
        assert ok.find_element(By.CSS_SELECTOR, ".logs").text == "x is 10"

        # A failing script: the error's line is marked in the gutter and behind the text.
        set_script(browser, 'let a = 1;\nlet b = a + "x" * 2;\nb')
        browser.find_element(By.ID, "run").click()
        marked = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#gutter .error"))
        assert [m.get_attribute("data-line") for m in marked] == ["2"]
        assert browser.find_element(By.ID, "line-mark").is_displayed()
        message = browser.find_element(By.ID, "error-message").text
        assert message.startswith("line 2, column ")
        failed = browser.find_element(By.CSS_SELECTOR, "#output .entry.error")
        assert failed.find_element(By.CSS_SELECTOR, ".where").text.startswith("runtime error at line 2")
        browser.save_screenshot(str(tmp_path / "console-error.png"))

        # The server restarts: the page notices, reconnects and signs in again with the wallet,
        # each attempt after a jittered, growing delay (attempt n: random * min(10 s, 0.5 s * 2^n)).
        server.stop()
        wait(browser, lambda d: state(d) == "reconnecting")
        server, _ = start_asgi_server("uvicorn", env, tmp_path / "second.log", port=port)
        answer_sign_request(browser, wallet)
        wait(browser, lambda d: state(d) == "signed-in")
        retries = browser.execute_script("return window.__retries;")
        assert retries and retries == [f"{n} {jittered_delay(n)}" for n in range(len(retries))]
        set_script(browser, "CALLER_ROLE")
        browser.find_element(By.ID, "run").click()
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#output .entry.ok")) == 2)
        latest = browser.find_elements(By.CSS_SELECTOR, "#output .entry.ok")[0]
        assert latest.find_element(By.CSS_SELECTOR, ".value").text == '"member"'
        assert not browser.find_elements(By.CSS_SELECTOR, "#gutter .error")  # editing cleared the mark
        browser.save_screenshot(str(tmp_path / "console-reconnected.png"))
        # All of it under the server's Content-Security-Policy, without one violation.
        assert csp_violations(browser) == []
        print(f"screenshots: {tmp_path}")
    finally:
        server.stop()
