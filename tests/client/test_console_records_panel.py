"""The console's records panel (console/static/console/records.js) in headless Chromium, against the fake.

The fake of tests/client/fake_records.py serves the page (tests/client/console_page.py). Checked:
watching a collection reads the head, then `db::list`, then subscribes with `since` = that head;
others' puts and deletes change the table live; after a restart the page subscribes again after
the last change it applied and shows what changed meanwhile without reading the list again; when
those changes are no longer kept (-32006) it reads everything again; a prefix. And the layout:
with many jobs and many records, the panes scroll inside a bounded height and the editor's Run
button stays in view and clickable. The same panel against the real server, a Stripe webhook
landing in it: tests/e2e/test_console_records.py.
"""

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By

from tests.client.console_page import ADDRESS, Background, not_covered, query, serve_console, sign_in, wait
from tests.client.fake_records import FakeLiveCircle
from tests.helpers.browser import headless_chromium


@pytest.fixture
def fake() -> Iterator[tuple[FakeLiveCircle, Background]]:
    background = Background()
    circle = FakeLiveCircle()
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


def table(driver) -> dict[str, tuple[str, str, str]]:
    """The panel's rows: key -> (data as shown, version, updated by)."""
    script = """
      return Array.from(document.querySelectorAll('#records-list tr.record'), (row) => [
        row.dataset.key, row.querySelector('td.data').textContent,
        row.querySelector('td.version').textContent, row.querySelector('td.updated-by').title]);
    """
    return {key: (data, version, by) for key, data, version, by in driver.execute_script(script)}


def watch(driver, collection: str, prefix: str = "") -> None:
    driver.find_element(By.ID, "records-collection").clear()
    driver.find_element(By.ID, "records-collection").send_keys(collection)
    driver.find_element(By.ID, "records-prefix").clear()
    if prefix:
        driver.find_element(By.ID, "records-prefix").send_keys(prefix)
    driver.find_element(By.ID, "records-watch-button").click()


def subscription(driver) -> str | None:
    return query(driver, "#records", "node.dataset.subscription || null")


def records_subscribes(circle: FakeLiveCircle) -> list[dict]:
    return [params for params in circle.params_of("subscribe") if params.get("topic") == "records"]


def test_the_records_panel_follows_a_collection_live(fake, browser) -> None:
    circle, background = fake
    background.run(circle.put("payments", "p1", {"amount": 10}, by="02aa"))
    background.run(circle.put("payments", "p2", {"amount": 20}, by="02bb"))
    background.run(circle.put("other", "x", {"n": 1}))
    sign_in(browser, circle.url.replace("ws://", "http://"))
    assert not browser.find_element(By.ID, "records").get_attribute("hidden")

    watch(browser, "payments")
    wait(browser, lambda d: subscription(d))
    assert table(browser) == {"p1": ('{"amount":10}', "1", "02aa"), "p2": ('{"amount":20}', "1", "02bb")}
    assert [m for m in circle.methods() if m in ("records_head", "play", "subscribe")][-3:] == [
        "records_head",
        "play",
        "subscribe",
    ]
    assert circle.params_of("play")[-1] == {"script": 'db::list("payments", 100)'}
    assert records_subscribes(circle) == [{"topic": "records", "collection": "payments", "since": 3}]

    # Others write: a new row, a new version, a row gone.
    background.run(circle.put("payments", "p3", {"amount": 30}, by="02cc"))
    background.run(circle.put("payments", "p1", {"amount": 11}, by="02dd"))
    background.run(circle.delete("payments", "p2"))
    background.run(circle.put("other", "y", {"n": 2}))
    wait(browser, lambda d: "p2" not in table(d))
    assert table(browser) == {"p1": ('{"amount":11}', "2", "02dd"), "p3": ('{"amount":30}', "1", "02cc")}
    assert query(browser, "#records", "node.dataset.seq") == "6"

    # A restart; meanwhile p1 is deleted and p4 written; the page subscribes again after seq 6 (7 was
    # another collection's).
    first = subscription(browser)
    background.run(circle.stop())
    background.run(circle.delete("payments", "p1"))
    background.run(circle.put("payments", "p4", {"amount": 40}, by="02ee"))
    background.run(circle.start())
    wait(browser, lambda d: subscription(d) not in (None, first), 30)
    wait(browser, lambda d: set(table(d)) == {"p3", "p4"})
    assert records_subscribes(circle)[-1] == {"topic": "records", "collection": "payments", "since": 6}
    assert len(circle.params_of("play")) == 1  # resumed, not read again
    assert query(browser, "#records", "node.dataset.seq") == "9"

    # Away again, and the changes it missed are no longer kept: it reads everything again.
    second = subscription(browser)
    background.run(circle.stop())
    background.run(circle.put("payments", "p5", {"amount": 50}))
    background.run(circle.put("payments", "p6", {"amount": 60}))
    circle.compact(11)  # 10 is gone: a since of 9 is too old
    background.run(circle.start())
    wait(browser, lambda d: subscription(d) not in (None, second), 30)
    wait(browser, lambda d: set(table(d)) == {"p3", "p4", "p5", "p6"})
    assert len(circle.params_of("play")) == 2
    assert records_subscribes(circle)[-1]["since"] == 11

    # A prefix: another subscription, only its keys.
    watch(browser, "payments", prefix="p5")
    wait(browser, lambda d: set(table(d)) == {"p5"})
    assert circle.params_of("play")[-1] == {"script": 'db::list("payments", 100, "p5")'}
    assert records_subscribes(circle)[-1]["prefix"] == "p5"
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not [message for message in errors if "records.js" in message or "console.js" in message], errors


def add_jobs(circle: FakeLiveCircle, count: int) -> None:
    for n in range(count):
        job_id = f"00000000-0000-4000-8000-{n:012d}"
        circle.jobs[job_id] = {
            "id": job_id,
            "caller_id": ADDRESS,
            "script": f"job {n}",
            "status": "finished",
            "output": str(n),
            "value": n,
            "error": None,
            "created_at": f"2026-12-02T01:00:{n % 60:02d}.000000Z",
            "updated_at": "2026-12-02T01:01:00.000000Z",
            "started_at": None,
            "finished_at": None,
            "elapsed_ms": 1.0,
            "_logs": "",
        }


@pytest.mark.parametrize("height", [1000, 650])
def test_many_jobs_and_records_scroll_inside_their_panes_below_the_editor(fake, height: int) -> None:
    circle, background = fake
    add_jobs(circle, 60)
    for n in range(150):
        background.run(circle.put("notes", f"k{n:03d}", {"n": n}))
    with headless_chromium(1300, height) as browser:
        sign_in(browser, circle.url.replace("ws://", "http://"))
        wait(browser, lambda d: query(d, "#jobs-list", "node.children.length") == 50)
        watch(browser, "notes")
        wait(browser, lambda d: subscription(d))
        wait(browser, lambda d: len(table(d)) == 100)  # the first read: 100
        background.run(circle.put("notes", "zz", {"n": -1}))
        wait(browser, lambda d: len(table(d)) == 101)
        assert query(browser, "#records-count", "node.textContent") == "(101+)"

        boxes = browser.execute_script("""
          const box = (id) => document.getElementById(id).getBoundingClientRect();
          const pane = (id) => { const node = document.getElementById(id);
            return {top: box(id).top, bottom: box(id).bottom, height: box(id).height,
                    scrolls: node.scrollHeight > node.clientHeight}; };
          return {run: box("run").bottom, editor: box("editor").height, jobs: pane("jobs"),
                  records: pane("records"), viewport: innerHeight};
        """)
        limit = boxes["viewport"] * 0.4 + 1
        for pane in ("jobs", "records"):
            assert boxes[pane]["scrolls"], boxes  # a long list scrolls inside its pane ...
            assert boxes[pane]["height"] <= limit, boxes  # ... of a bounded height
        assert boxes["run"] <= boxes["jobs"]["top"] <= boxes["records"]["top"], boxes  # nothing overlaps
        assert boxes["editor"] >= 239, boxes  # the editor keeps its height
        assert not_covered(browser, "run"), boxes
        plays = len(circle.params_of("play"))
        browser.find_element(By.ID, "run").click()  # a real click reaches it
        wait(browser, lambda d: len(circle.params_of("play")) == plays + 1)
