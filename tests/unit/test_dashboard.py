"""The dashboard's page from rows: its figures where they can be checked to the cent, a
document that points at nothing off the page, text from the warehouse escaped, the
marts read as published, and a page that is replaced whole or not at all."""

from __future__ import annotations

import stat
from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from ey_platform.backends import make_warehouse
from ey_platform.errors import PlatformError
from ey_platform.ops.health import Finding
from ey_platform.serving import charts
from ey_platform.serving.dashboard import (
    DashboardData,
    PlatformHealth,
    Sales,
    _replace,
    default_path,
    gather,
    render,
    write_dashboard,
)
from ey_platform.settings import Settings, load_settings

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
HOSTILE = '<img src="https://evil.example/x.png" onerror="alert(1)">'


class Page(HTMLParser):
    """The elements of a document: each one's attributes, the text of those with an id,
    and the body of every script."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: dict[str, str] = {}
        self.scripts: list[str] = []
        self._open: list[str | None] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        if tag in ("meta", "br", "img", "link", "input"):
            return
        self._open.append(found.get("id"))
        if tag == "script":
            self.scripts.append("")
        if found.get("id"):
            self.text[found["id"] or ""] = ""

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self.lasttag == "script" and self.scripts:
            self.scripts[-1] += data
        for open_id in self._open:
            if open_id:
                self.text[open_id] += data


def _data(**sales: object) -> DashboardData:
    figures: dict[str, object] = {
        "revenue_total": Decimal("1234.005000000"),
        "items_total": 12,
        "orders_total": 3,
        "by_day": [(date(2020, 3, 1), Decimal("1000.5"), 2), (date(2020, 3, 2), Decimal(7), 1)],
        "by_category": [("electronics", Decimal(1000), 5), (HOSTILE, Decimal("234.005"), 7)],
        "top_products": [(1, "Backpack", Decimal(100), 2), (2, "Backpack", Decimal(50), 1)],
        "basket_sizes": [(1, 1), (5, 2)],
        "orders_by_user": [(1, "johnd", 2, Decimal(20)), (2, "mor_2314", 1, Decimal(10))],
        **sales,
    }
    health = PlatformHealth(
        findings=[
            Finding("job", "batch users", "ok", "loaded"),
            Finding("freshness", "products", "warn", HOSTILE),
            Finding("stream", "dead letters", "fail", "2"),
        ],
        layers=[("raw", "bq_raw.products", 20), ("marts", "bq_analytics.fact_orders", 14)],
        backlog=0,
        dead_letters=2,
        cart_activity=[
            (date(2026, 11, 25), "cart_created", 7),
            (date(2026, 11, 26), "cart_deleted", 1),
        ],
    )
    return DashboardData(
        NOW, "local", "DuckDB /data/serving/analytics.duckdb", Sales(**figures), health
    )


def test_the_totals_are_in_their_elements_to_the_cent_and_the_page_says_when_and_whence() -> None:
    page = Page(render(_data()))
    assert page.text["revenue-total"] == "1234.01"  # half up, as a till rounds
    assert page.text["items-total"] == "12"
    assert page.text["orders-total"] == "3"
    assert page.text["items-per-order"] == "4.00"
    assert page.text["revenue-per-order"] == "411.34"
    assert page.text["generated-at"] == "2026-11-26 09:30:00Z"
    assert page.text["profile"] == "local"
    assert page.text["warehouse"] == "DuckDB /data/serving/analytics.duckdb"
    assert page.text["dead-letters"] == "2"


def test_no_orders_yet_the_page_is_whole_and_says_so() -> None:
    empty = _data(
        revenue_total=Decimal(0),
        items_total=0,
        orders_total=0,
        by_day=[],
        by_category=[],
        top_products=[],
        basket_sizes=[],
        orders_by_user=[],
    )
    text = render(empty)
    page = Page(text)
    assert page.text["revenue-total"] == "0.00"
    assert page.text["items-per-order"] == "n/a"
    assert text.count("no data yet") == 5  # every sales chart, not the health's
    ids = {
        attrs["id"] for tag, attrs in page.tags if "plotly-graph-div" in (attrs.get("class") or "")
    }
    assert ids == set(charts.CHART_IDS)


def test_the_page_loads_nothing_from_anywhere_and_inlines_plotly_once() -> None:
    text = render(_data(by_category=[("electronics", Decimal(1000), 5)]))
    page = Page(text)
    linked = [
        (tag, name, value)
        for tag, attrs in page.tags
        for name, value in attrs.items()
        if name in ("src", "href", "srcset", "action", "data", "poster") and value is not None
    ]
    assert linked == []  # no element loads or links anything, not even on the page itself
    assert [tag for tag, _ in page.tags if tag in ("link", "iframe", "object", "embed")] == []
    plotly, *figures = page.scripts
    assert text.count("plotly.js v") == 1 and "plotly.js v" in plotly
    assert len(figures) == len(charts.CHART_IDS)
    assert [s for s in figures if "http" in s or "Plotly.newPlot" not in s] == []
    (policy,) = [
        a["content"] for t, a in page.tags if a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert policy is not None and "default-src 'none'" in policy
    assert "connect-src" not in policy and "font-src" not in policy  # both fall back to none


def test_text_from_the_warehouse_is_shown_as_text() -> None:
    text = render(_data())
    page = Page(text)
    assert HOSTILE not in text  # not in the table, not in a figure's JSON
    assert [attrs for tag, attrs in page.tags if tag == "img"] == []
    assert page.text["findings"].count(HOSTILE) == 1  # what the finding said, as text


def test_two_products_of_one_title_are_two_bars_and_amounts_show_to_the_cent() -> None:
    figure = charts.top_products(
        [(1, "Backpack", Decimal("100.005"), 2), (2, "Backpack", Decimal(50), 1)]
    )
    (bars,) = figure.data
    assert list(bars.y) == ["Backpack (#2)", "Backpack (#1)"]  # the first row on top
    assert list(bars.text) == ["50.00 · 1 items", "100.01 · 2 items"]
    assert charts.money(Decimal("1234567.125")) == "1,234,567.13"


def test_a_name_from_the_warehouse_is_a_label_for_plotly_not_markup() -> None:
    # Plotly reads <b>, <a href> in labels and decodes entities: escaped, it shows the name.
    figure = charts.revenue_by_category([('<a href="https://e.example">x</a> & y', Decimal(1), 1)])
    assert list(figure.data[0].y) == ['&lt;a href="https://e.example"&gt;x&lt;/a&gt; &amp; y']
    users = charts.orders_by_user([(1, "<b>jo</b>", 1, Decimal(1))])
    assert list(users.data[0].x) == ["&lt;b&gt;jo&lt;/b&gt;"]


def test_cart_activity_has_a_bar_series_per_event_type_even_without_events_of_one() -> None:
    figure = charts.cart_activity([(date(2026, 11, 25), "cart_created", 7)])
    assert [trace.name for trace in figure.data] == ["created", "updated", "deleted"]
    assert [list(trace.y) for trace in figure.data] == [[7], [], []]


def _published(tmp_path: Path) -> Settings:
    """A data folder whose marts were published from rows written here: two versions of
    one product (its current title names it), a second category, two users."""
    cfg = load_settings(data_dir=tmp_path / "data")
    warehouse = make_warehouse(cfg)
    warehouse.setup()
    build = warehouse.build
    with duckdb.connect(str(cfg.duckdb_path)) as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {build}")
        con.execute(
            f"CREATE TABLE {build}.dim_products AS SELECT * FROM (VALUES "
            "('p1v1', 1, 'Old bag', 'bags', false), ('p1v2', 1, 'Backpack', 'bags', true), "
            "('p2v1', 2, 'Ring', 'jewelery', true)) "
            "AS t(product_key, product_id, title, category, is_current)"
        )
        con.execute(
            f"CREATE TABLE {build}.dim_users AS SELECT * FROM (VALUES "
            "('u1', 1, 'johnd'), ('u2', 2, 'mor_2314')) AS t(user_key, user_id, username)"
        )
        con.execute(
            f"CREATE TABLE {build}.fact_orders AS SELECT cart_id, line_number, user_key, "
            "product_key, CAST(order_date AS DATE) AS order_date, quantity, "
            "CAST(line_amount AS DECIMAL(38, 9)) AS line_amount FROM (VALUES "
            "(1, 1, 'u1', 'p1v1', '2020-03-01', 2, 20.10), "
            "(1, 2, 'u1', 'p2v1', '2020-03-01', 1, 5.05), "
            "(2, 1, 'u1', 'p1v2', '2020-03-02', 3, 36.30), "
            "(3, 1, 'u2', 'p2v1', '2020-03-02', 1, 5.05)) "
            "AS t(cart_id, line_number, user_key, product_key, order_date, quantity, line_amount)"
        )
        con.execute(
            f"CREATE TABLE {build}.fact_order_totals AS SELECT cart_id, user_key, order_date, "
            "count(*) AS line_count, sum(quantity) AS item_count, sum(line_amount) AS order_total "
            f"FROM {build}.fact_orders GROUP BY ALL"
        )
    warehouse.publish(["dim_products", "dim_users", "fact_orders", "fact_order_totals"])
    return cfg


def test_the_figures_are_those_of_the_published_marts(tmp_path: Path) -> None:
    data = gather(_published(tmp_path), now=NOW)
    sales = data.sales
    assert (sales.revenue_total, sales.items_total, sales.orders_total) == (Decimal("66.5"), 7, 3)
    assert sales.by_day == [
        (date(2020, 3, 1), Decimal("25.15"), 1),
        (date(2020, 3, 2), Decimal("41.35"), 2),
    ]
    assert sales.by_category == [("bags", Decimal("56.4"), 5), ("jewelery", Decimal("10.1"), 2)]
    # both versions of product 1 under its current title
    assert sales.top_products == [
        (1, "Backpack", Decimal("56.4"), 5),
        (2, "Ring", Decimal("10.1"), 2),
    ]
    assert sales.basket_sizes == [(1, 1), (3, 2)]
    assert sales.orders_by_user == [
        (1, "johnd", 2, Decimal("61.45")),
        (2, "mor_2314", 1, Decimal("5.05")),
    ]
    assert (
        data.warehouse == f"DuckDB {(tmp_path / 'data' / 'serving' / 'analytics.duckdb').resolve()}"
    )
    # nothing landed and nothing ran: the health says it, the page is still made
    assert data.health.cart_activity == [] and data.health.dead_letters == 0
    unread = [f for f in data.health.findings if f.subject == "unreadable"]
    assert [f.area for f in unread] == ["layers"]  # this build has only the marts


def test_the_page_replaces_the_last_one_whole_or_not_at_all(tmp_path: Path) -> None:
    cfg = _published(tmp_path)
    page = write_dashboard(cfg)
    assert (
        page == default_path(cfg).resolve() == (tmp_path / "data/serving/dashboard.html").resolve()
    )
    assert stat.S_IMODE(page.stat().st_mode) == 0o644
    first = page.read_text()
    assert Page(first).text["revenue-total"] == "66.50"
    with pytest.raises(UnicodeEncodeError):
        _replace(page, "half a page \ud800")  # fails mid-write: a lone surrogate
    assert page.read_text() == first
    assert sorted(p.name for p in page.parent.iterdir()) == ["analytics.duckdb", "dashboard.html"]


def test_no_published_marts_no_page_and_a_line_saying_to_run_the_transform(tmp_path: Path) -> None:
    cfg = load_settings(data_dir=tmp_path / "data")
    with pytest.raises(PlatformError) as raised:
        write_dashboard(cfg)
    message = str(raised.value)
    assert "ey-platform transform" in message and "\n" not in message
    assert not default_path(cfg).exists()
