"""The console page against an in-process fake server, in headless Chromium: shared by the panel tests.

`serve_console(circle)` puts the console's HTML (the real template, rendered) and its static files
on the fake's own port; the fake serves in a `Background` loop of its own thread, so that the
blocking WebDriver calls do not stop it. The wallet is a double that signs at once (the fakes
take any signature). Read and click through the page's own DOM calls (`query`), never through a
WebElement kept across a redraw.
"""

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from django.template.loader import render_to_string
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.client.fake_server import FakeServer

STATIC = Path(__file__).resolve().parents[2] / "console" / "static" / "console"
ADDRESS = "0x5290f6D4E3aD5bC0E9E5c1d2A9A1d2bC0E9E5c1d"
WALLET = f"""
window.ethereum = {{
  request({{ method }}) {{
    if (method === "eth_requestAccounts" || method === "eth_accounts") return Promise.resolve(["{ADDRESS}"]);
    if (method === "personal_sign") return Promise.resolve("0x" + "11".repeat(65));
    return Promise.reject(new Error("unsupported " + method));
  }},
}};
"""
TYPES = {".js": "text/javascript", ".css": "text/css"}


class Background:
    """An event loop in a thread: the fake serves there, the test's coroutines run there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def serve_console(circle: FakeServer) -> None:
    """The console page at `/circle` and its scripts and styles at `/static/console/…`."""
    page = render_to_string(
        "console/console.html", {"circle": SimpleNamespace(name="fake", public_key="circle")}
    )
    circle.pages["/circle"] = ("text/html; charset=utf-8", page.encode())
    for path in STATIC.iterdir():
        content_type = TYPES.get(path.suffix, "text/plain")
        circle.pages[f"/static/console/{path.name}"] = (content_type, path.read_bytes())


def wait(driver, condition, timeout: float = 15.0):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def query(driver, selector: str, expression: str) -> Any:
    """`expression` of the first node matching `selector` (as `node`), or None when none does."""
    script = f"const node = document.querySelector(arguments[0]); return node ? {expression} : null;"
    return driver.execute_script(script, selector)


def set_script(driver, source: str) -> None:
    driver.execute_script(
        "const t = document.getElementById('script'); t.value = arguments[0];"
        "t.dispatchEvent(new Event('input'));",
        source,
    )


def sign_in(driver, url: str) -> None:
    """Open the page with the wallet double and sign in (the panels open once it is signed in)."""
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WALLET})
    driver.get(url)
    wait(driver, lambda d: d.find_element(By.ID, "connection").get_attribute("data-state") == "connected")
    driver.find_element(By.ID, "sign-in").click()
    wait(driver, lambda d: d.find_element(By.ID, "connection").get_attribute("data-state") == "signed-in")


def not_covered(driver, element_id: str) -> bool:
    """Whether the middle of the element is on screen and the element itself gets a click there."""
    script = """
      const node = document.getElementById(arguments[0]);
      node.scrollIntoView({block: "nearest"});
      const box = node.getBoundingClientRect();
      const x = box.left + box.width / 2, y = box.top + box.height / 2;
      if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) return false;
      const hit = document.elementFromPoint(x, y);
      return hit === node || node.contains(hit);
    """
    return bool(driver.execute_script(script, element_id))
