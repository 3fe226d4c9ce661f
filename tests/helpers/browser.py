"""Debian's chromium and chromedriver, headless, for the browser tests."""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.helpers.processes import require_binary


@contextmanager
def headless_chromium(width: int, height: int) -> Iterator[webdriver.Chrome]:
    """A headless Chromium window of `width` x `height`, quit afterwards."""
    options = webdriver.ChromeOptions()
    options.binary_location = require_binary("chromium")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console log, for get_log
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    service = Service(executable_path=shutil.which("chromedriver") or require_binary("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


# Records every Content-Security-Policy violation the page reports (the browser log has them too).
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


def csp_violations(driver) -> list[str]:
    """What the page reported, and what the browser logged, about the Content-Security-Policy."""
    logged = [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]
    return driver.execute_script("return window.__cspViolations;") + logged
