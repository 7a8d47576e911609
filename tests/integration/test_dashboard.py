"""``ey-platform dashboard`` as a reader meets it: the page the demo writes, opened from
the file system in headless Chromium (Debian's, driven by its chromedriver), draws every
chart without a console error and shows the totals of the published ``fact_orders``;
with the network off it draws the same and asks for nothing; ``--serve`` serves those
bytes on loopback; before any transform it is one line saying what to run. And the
cart-activity read on each warehouse."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest

from ey_platform.serving.charts import CHART_IDS
from ey_platform.source.data import Catalog
from ey_platform.source.server import create_app, serve_in_thread
from ey_platform.warehouse.base import EventRows, Warehouse
from tests.cli import cli, one_error_line
from tests.contract.conftest import emulator_env, settings, warehouse  # noqa: F401 - fixtures

# Read at import: the autouse clean_environ fixture removes every EYP_ variable.
# Debian's chromium and its chromedriver by default (.ci/run installs them); GitHub's
# Ubuntu runners point these at their Chrome and its driver instead.
CHROMIUM = Path(os.environ.get("EYP_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("EYP_CHROMEDRIVER", "/usr/bin/chromedriver"))
_BROWSER_REQUIRED = os.environ.get("EYP_REQUIRE_BROWSER") == "1"
_PNG = b"\x89PNG\r\n\x1a\n"
_DASHBOARD = (sys.executable, "-m", "ey_platform", "dashboard")


@dataclass(frozen=True)
class Demo:
    data: Path
    page: Path
    stdout: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """``ey-platform demo`` run once for the module, on the bundled server's data: the
    page it writes."""
    home = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch, serve_in_thread(create_app(Catalog())) as url:
        for key in [k for k in os.environ if k.startswith("EYP_")]:
            patch.delenv(key)  # no developer setting, no .env of theirs: a clean folder
        patch.chdir(home)
        result = cli(home / "data", url, "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("dashboard: ")]
    return Demo(home / "data", Path(line.removeprefix("dashboard: ")), result.stdout)


def _chromium() -> Any:
    """Headless Chromium under Debian's chromedriver (selenium manager downloads nothing),
    logging the console and the network."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not CHROMIUM.exists():
        if _BROWSER_REQUIRED:
            pytest.fail(f"{CHROMIUM} is missing; EYP_REQUIRE_BROWSER=1")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,2200"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = _chromium()
    try:
        yield driver
    finally:
        driver.quit()


def _open(driver: Any, url: str) -> list[str]:
    """Load ``url`` and wait until every figure has drawn its SVG; the ids of the figures
    drawn."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    figures = "return [...document.querySelectorAll('.plotly-graph-div')]"
    drawn = f"{figures}.every(d => d.querySelector('svg.main-svg') !== null)"
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(drawn))
    found = driver.find_elements(By.CSS_SELECTOR, ".plotly-graph-div")
    return [
        f.get_attribute("id") for f in found if f.find_elements(By.CSS_SELECTOR, "svg.main-svg")
    ]


def _marts_totals(data: Path) -> tuple[Decimal, int]:
    """``sum(line_amount), sum(quantity)`` of the published fact_orders, read here."""
    serving = data / "serving" / "analytics.duckdb"
    with duckdb.connect(str(serving), read_only=True) as con:
        row = con.execute(
            "SELECT sum(line_amount), sum(quantity) FROM bq_analytics.fact_orders"
        ).fetchone()
    assert row is not None
    return Decimal(row[0]), int(row[1])


@pytest.mark.slow
def test_the_demo_page_draws_every_chart_without_an_error_and_shows_the_marts_totals(
    demo: Demo, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    assert demo.page == (demo.data / "serving" / "dashboard.html").resolve()
    browser.get_log("browser")  # what an earlier page said is not this one's
    assert sorted(_open(browser, demo.page.as_uri())) == sorted(CHART_IDS)
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(_PNG) and shot.stat().st_size > 50_000
    revenue, items = _marts_totals(demo.data)
    assert revenue > 0 and items > 0
    assert Decimal(browser.find_element(By.ID, "revenue-total").text) == revenue
    assert browser.find_element(By.ID, "items-total").text == str(items)
    assert browser.find_element(By.ID, "profile").text == "local"


def _requests(driver: Any) -> list[str]:
    """The URLs the page asked for, from Chromium's network log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


@pytest.mark.slow
def test_with_the_network_off_the_page_draws_every_chart_and_asks_for_nothing(
    demo: Demo, browser: Any
) -> None:
    offline = {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0}
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    try:
        browser.get_log("performance")
        browser.get_log("browser")
        assert sorted(_open(browser, demo.page.as_uri())) == sorted(CHART_IDS)
        assert _requests(browser) == [demo.page.as_uri()]  # the page itself, nothing else
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": False})


@contextmanager
def _lines(child: subprocess.Popen[str]) -> Iterator[queue.Queue[str]]:
    """The lines of a child's stdout as they come, read on a thread of their own, which
    has read to the end before the child's pipe is closed. The child is killed if it
    still runs when the block ends."""
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in child.stdout or ()])
    reader.start()
    try:
        yield lines
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        reader.join(timeout=10)


@pytest.mark.slow
def test_serve_serves_the_page_it_wrote_on_a_free_loopback_port(demo: Demo, tmp_path: Path) -> None:
    page, errors = tmp_path / "page.html", tmp_path / "stderr.txt"
    with (
        errors.open("w") as stderr,
        subprocess.Popen(
            [*_DASHBOARD, "--serve", "--port", "0", "--output", str(page)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "EYP_DATA_DIR": str(demo.data)},
        ) as child,
        _lines(child) as lines,
    ):
        assert lines.get(timeout=60) == f"dashboard: {page.resolve()}\n"
        serving = lines.get(timeout=30)
        assert serving.startswith("serving on http://127.0.0.1:"), serving
        url = serving.split()[2]
        answer = httpx.get(url, timeout=10)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.content == page.read_bytes()
        assert httpx.get(url + "page.html", timeout=10).content == answer.content
        child.send_signal(signal.SIGINT)  # Ctrl-C
        assert child.wait(timeout=20) == 0
    assert "Traceback" not in errors.read_text(), errors.read_text()


@pytest.mark.slow
def test_serve_on_a_port_in_use_is_one_line_naming_it(demo: Demo, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = tmp_path / "page.html"
        result = cli(
            demo.data,
            "http://127.0.0.1:9",
            "dashboard",
            "--serve",
            "--port",
            str(port),
            "--output",
            str(out),
        )
    assert f"cannot listen on 127.0.0.1:{port}" in one_error_line(result)


def test_before_any_transform_it_is_one_line_saying_to_run_it(tmp_path: Path) -> None:
    result = cli(tmp_path / "data", "http://127.0.0.1:9", "dashboard")
    assert "ey-platform transform" in one_error_line(result)
    assert not (tmp_path / "data" / "serving" / "dashboard.html").exists()


def _event(event_id: str, kind: str, published: str) -> bytes:
    deleted = kind == "cart_deleted"
    return orjson.dumps(
        {
            "event_id": event_id,
            "event_type": kind,
            "schema_version": 1,
            "cart_id": int(event_id[1:]),
            "cart_version": 1,
            "content_hash": None if deleted else f"h{event_id}",
            "cart": None if deleted else {"id": int(event_id[1:]), "userId": 1},
            "extracted_at": published,
            "published_at": published,
        }
    )


def test_cart_activity_counts_each_day_and_type_from_the_first_day_asked(
    warehouse: Warehouse,  # noqa: F811 - the contract suite's fixture, each backend
) -> None:
    events = [
        _event("e1", "cart_created", "2026-11-20T23:59:00+00:00"),  # before the first day
        _event("e2", "cart_created", "2026-11-24T08:00:00+00:00"),
        _event("e3", "cart_created", "2026-11-24T09:00:00+00:00"),
        _event("e4", "cart_updated", "2026-11-24T10:00:00+00:00"),
        _event("e5", "cart_deleted", "2026-11-26T00:00:00+00:00"),
    ]
    at = datetime(2026, 11, 26, tzinfo=UTC)
    sink = warehouse.event_sink()
    sink.write(EventRows(events, [f"m{i}" for i in range(len(events))], [at] * len(events)))
    sink.release()
    assert warehouse.cart_activity(date(2026, 11, 21)) == [
        (date(2026, 11, 24), "cart_created", 2),
        (date(2026, 11, 24), "cart_updated", 1),
        (date(2026, 11, 26), "cart_deleted", 1),
    ]
    assert warehouse.cart_activity(date(2026, 11, 27)) == []
