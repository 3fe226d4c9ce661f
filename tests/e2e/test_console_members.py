"""The console's members panel in headless Chromium, against uvicorn + Redis + a real rhai_worker.

The owner adds, re-roles and removes a member from the page; an admin sees admins read-only and
cannot make one; a member sees no panel. Each change is checked over a real socket too, and the
whole page runs under the server's Content-Security-Policy without a violation.
"""

import asyncio
import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.e2e.conftest import World
from tests.e2e.test_console import WALLET, answer_sign_request, state, wait
from tests.helpers.browser import CSP_WATCH, csp_violations, headless_chromium
from tests.helpers.keys import WalletKey
from tests.helpers.processes import manage, server_env
from tests.helpers.redis_server import RedisServer
from tests.helpers.rpc import RpcClient

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def queue_settings(redis_server: RedisServer) -> dict[str, str]:
    return {
        "REDIS_URL": redis_server.url,
        "CIRCLES_QUEUE_STREAM": f"e2e-console-members:{uuid.uuid4().hex[:8]}",
    }


@pytest.fixture(scope="module")
def server(start_server, start_workers, queue_settings) -> str:
    start_workers(**queue_settings)
    return start_server(**queue_settings)


@pytest.fixture
def keys(world: World) -> dict[str, WalletKey]:
    tag = uuid.uuid4().hex[:8]
    keys = {
        who: WalletKey.named(f"console-members-{tag}-{who}") for who in ("owner", "admin", "member", "ann")
    }
    env = server_env(world.database_url)
    manage(env, "create_circle", "--name", f"console-{tag}", "--pubkey", keys["owner"].pubkey)
    manage(env, "add_member", keys["owner"].pubkey, keys["admin"].pubkey, "--role", "admin")
    manage(env, "add_member", keys["owner"].pubkey, keys["member"].pubkey, "--role", "member")
    return keys


@pytest.fixture
def browser():
    with headless_chromium(1300, 900) as driver:
        yield driver


def open_as(browser, server: str, keys: dict[str, WalletKey], who: str) -> None:
    wallet = keys[who]
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WALLET % wallet.address})
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_WATCH})
    browser.get(f"{server.replace('ws://', 'http://')}/{keys['owner'].pubkey}")
    wait(browser, lambda d: state(d) == "connected")
    browser.find_element(By.ID, "sign-in").click()
    answer_sign_request(browser, wallet)
    wait(browser, lambda d: state(d) == "signed-in")


def rows(browser) -> dict[str, str]:
    """key -> role of every row the panel shows."""
    return {
        row.get_attribute("data-key"): row.get_attribute("data-role")
        for row in browser.find_elements(By.CSS_SELECTOR, "#members-list tr")
    }


def loaded_after(browser, before: str | None) -> None:
    wait(
        browser, lambda d: d.find_element(By.ID, "members").get_attribute("data-loaded") not in (None, before)
    )


def loaded_mark(browser) -> str | None:
    return browser.find_element(By.ID, "members").get_attribute("data-loaded")


def row(browser, key: str):
    return browser.find_element(By.CSS_SELECTOR, f'#members-list tr[data-key="{key}"]')


async def role_over_a_socket(server: str, keys: dict[str, WalletKey], who: str) -> str:
    async with await RpcClient.connect(f"{server}/{keys['owner'].pubkey}") as client:
        await client.sign_in(keys[who])
        return (await client.call("whoami"))["role"]


def test_the_owner_adds_re_roles_and_removes_a_member(browser, server: str, keys) -> None:
    open_as(browser, server, keys, "owner")
    loaded_after(browser, None)
    owner, admin, member, ann = (keys[k].pubkey for k in ("owner", "admin", "member", "ann"))
    assert rows(browser) == {owner: "owner", admin: "admin", member: "member"}
    assert not row(browser, owner).find_elements(
        By.CSS_SELECTOR, "select, button"
    )  # the owner's row is fixed

    # Add ann as a member, by public key, with a name.
    mark = loaded_mark(browser)
    browser.find_element(By.ID, "member-key").send_keys(ann)
    browser.find_element(By.ID, "member-name").send_keys("Ann")
    Select(browser.find_element(By.ID, "member-role")).select_by_value("member")
    browser.find_element(By.ID, "member-add-button").click()
    loaded_after(browser, mark)
    assert (
        rows(browser)[ann] == "member"
        and row(browser, ann).find_element(By.CSS_SELECTOR, ".name").text == "Ann"
    )
    assert asyncio.run(role_over_a_socket(server, keys, "ann")) == "member"

    # Make ann an admin from her row.
    mark = loaded_mark(browser)
    Select(row(browser, ann).find_element(By.CSS_SELECTOR, "select")).select_by_value("admin")
    loaded_after(browser, mark)
    assert rows(browser)[ann] == "admin"
    assert asyncio.run(role_over_a_socket(server, keys, "ann")) == "admin"

    # Remove her: the first click asks, the second removes.
    button = row(browser, ann).find_element(By.CSS_SELECTOR, "button.remove")
    button.click()
    assert button.text == "Confirm remove" and ann in rows(browser)
    mark = loaded_mark(browser)
    button.click()
    loaded_after(browser, mark)
    assert ann not in rows(browser)
    assert asyncio.run(role_over_a_socket(server, keys, "ann")) == "guest"
    assert browser.find_element(By.ID, "members-error").is_displayed() is False
    assert csp_violations(browser) == []


def test_an_admin_sees_admins_read_only_and_gets_the_servers_refusals(browser, server: str, keys) -> None:
    open_as(browser, server, keys, "admin")
    loaded_after(browser, None)
    owner, admin, member = (keys[k].pubkey for k in ("owner", "admin", "member"))
    assert browser.find_element(By.ID, "members").get_attribute("data-viewer") == "admin"
    assert not row(browser, admin).find_elements(By.CSS_SELECTOR, "select, button")  # admins: read-only
    options = [
        o.get_attribute("value") for o in row(browser, member).find_elements(By.CSS_SELECTOR, "option")
    ]
    assert options == ["member", "guest"]  # no "admin" for an admin to give
    add_roles = Select(browser.find_element(By.ID, "member-role")).options
    assert [o.get_attribute("value") for o in add_roles if o.is_enabled()] == ["member", "guest"]

    # The form is only a convenience: what the server refuses shows as its message.
    mark = loaded_mark(browser)
    browser.find_element(By.ID, "member-key").send_keys(owner)
    browser.find_element(By.ID, "member-add-button").click()
    loaded_after(browser, mark)
    error = browser.find_element(By.ID, "members-error")
    assert error.is_displayed()
    assert (
        error.text == "circle::add_member: the owner is the circle's own key; it cannot be added as a member"
    )

    # An allowed change: the member becomes an invited guest.
    mark = loaded_mark(browser)
    Select(row(browser, member).find_element(By.CSS_SELECTOR, "select")).select_by_value("guest")
    loaded_after(browser, mark)
    assert rows(browser)[member] == "guest" and not error.is_displayed()
    assert csp_violations(browser) == []


def test_a_member_sees_no_members_panel(browser, server: str, keys) -> None:
    open_as(browser, server, keys, "member")
    assert "member" in browser.find_element(By.ID, "identity").text
    assert not browser.find_element(By.ID, "members").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "#members-list tr") == []
    assert csp_violations(browser) == []
