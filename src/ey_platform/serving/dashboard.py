"""``ey-platform dashboard``: one HTML page of the published marts and of the platform's
health, that opens from the file system with no network at all.

Everything the page shows is read first (:func:`gather`, into :class:`DashboardData`)
and drawn afterwards (:func:`render`), so that a test can hold the page to the figures.
The sales come from the published marts only (``read_marts``: what a BI tool sees, never
a half-built model); the health strip from the raw layer, the bus and the findings of
``ey-platform health``, and a part of it that cannot be read is shown as a failed
finding rather than withholding the page. Plotly's bundled JavaScript is inlined once
and a Content-Security-Policy forbids any fetch, so the file is all a reader needs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TypeVar

from ey_platform.backends import make_warehouse, open_bus_read_only
from ey_platform.bus.base import bus_stats
from ey_platform.errors import PlatformError
from ey_platform.ops.health import Finding
from ey_platform.serving import charts
from ey_platform.serving.charts import cents
from ey_platform.settings import Settings
from ey_platform.warehouse.base import Warehouse

ACTIVITY_DAYS: Final = 90
"""How many days of cart events the activity chart shows."""
TOP: Final = 10
USERS: Final = 20

# The reads of the published marts, in SQL that DuckDB and BigQuery both run.
_TOTALS: Final = "SELECT sum(line_amount), sum(quantity), count(DISTINCT cart_id) FROM fact_orders"
_BY_DAY: Final = (
    "SELECT order_date, sum(line_amount) AS revenue, count(DISTINCT cart_id) AS orders "
    "FROM fact_orders GROUP BY order_date ORDER BY order_date"
)
_BY_CATEGORY: Final = """SELECT p.category, sum(f.line_amount) AS revenue, sum(f.quantity) AS items
FROM fact_orders AS f JOIN dim_products AS p ON p.product_key = f.product_key
GROUP BY p.category ORDER BY revenue DESC, p.category"""
# A product's revenue over all its versions, under its current title (its id if none).
_TOP_PRODUCTS: Final = f"""SELECT t.product_id, coalesce(c.title, cast(t.product_id AS STRING)),
t.revenue, t.items
FROM (SELECT p.product_id, sum(f.line_amount) AS revenue, sum(f.quantity) AS items
      FROM fact_orders AS f JOIN dim_products AS p ON p.product_key = f.product_key
      GROUP BY p.product_id) AS t
LEFT JOIN dim_products AS c ON c.product_id = t.product_id AND c.is_current
ORDER BY t.revenue DESC, t.product_id LIMIT {TOP}"""
_BASKETS: Final = (
    "SELECT item_count, count(*) AS orders FROM fact_order_totals "
    "GROUP BY item_count ORDER BY item_count"
)
_BY_USER: Final = f"""SELECT u.user_id, u.username, count(*) AS orders,
sum(o.order_total) AS revenue
FROM fact_order_totals AS o JOIN dim_users AS u ON u.user_key = o.user_key
GROUP BY u.user_id, u.username ORDER BY orders DESC, revenue DESC, u.user_id LIMIT {USERS}"""

T = TypeVar("T")


@dataclass(frozen=True)
class Sales:
    """What the published marts say: totals, and the rows of each chart."""

    revenue_total: Decimal
    items_total: int
    orders_total: int
    by_day: list[tuple[date, Decimal, int]]
    """(order date, revenue, orders)."""
    by_category: list[tuple[str, Decimal, int]]
    """(category, revenue, items), largest revenue first."""
    top_products: list[tuple[int, str, Decimal, int]]
    """(product id, current title, revenue, items), largest revenue first."""
    basket_sizes: list[tuple[int, int]]
    """(items in an order, orders)."""
    orders_by_user: list[tuple[int, str, int, Decimal]]
    """(user id, username, orders, revenue), most orders first."""

    @property
    def items_per_order(self) -> Decimal | None:
        return cents(Decimal(self.items_total) / self.orders_total) if self.orders_total else None

    @property
    def revenue_per_order(self) -> Decimal | None:
        return cents(self.revenue_total / self.orders_total) if self.orders_total else None


@dataclass(frozen=True)
class PlatformHealth:
    """The health strip: the findings of ``ey-platform health`` (and of any part of the
    page that could not be read), rows per layer, the bus's counts, cart activity."""

    findings: list[Finding]
    layers: list[tuple[str, str, int]]
    """(layer, ``dataset.table``, rows), raw first."""
    backlog: int | None
    """Unacked messages; None where the bus cannot count (Pub/Sub)."""
    dead_letters: int | None
    cart_activity: list[tuple[date, str, int]]
    """(event date, event type, events) of the last :data:`ACTIVITY_DAYS` days."""


@dataclass(frozen=True)
class DashboardData:
    """Every number the page shows, as plain rows."""

    generated_at: datetime
    profile: str
    warehouse: str
    """What the sales were read from: the serving file, or the BigQuery dataset."""
    sales: Sales
    health: PlatformHealth


def default_path(settings: Settings) -> Path:
    return settings.serving_path.parent / "dashboard.html"


def write_dashboard(settings: Settings, path: Path | None = None) -> Path:
    """Write the page to ``path`` (``<data_dir>/serving/dashboard.html``) in one step: a
    reader opening it mid-write sees the previous page, whole. Returns its path."""
    target = (path or default_path(settings)).resolve()
    _replace(target, render(gather(settings)))
    return target


def _replace(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        Path(temp).chmod(0o644)  # mkstemp's 0600 would hide it from a web server's user
        Path(temp).replace(target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# How long the health reads wait for a warehouse file another process writes: the page
# shows that part as unreadable rather than keep its reader waiting for minutes.
HEALTH_WAIT: Final = 5.0


def _briefly(settings: Settings) -> Settings:
    """``settings`` with the DuckDB lock wait cut to :data:`HEALTH_WAIT`. The health
    reads open the warehouse file read-only for milliseconds; the sales read the
    serving file, which nothing ever locks for writing."""
    duckdb = settings.warehouse.duckdb
    wait = min(duckdb.lock_timeout, HEALTH_WAIT)
    warehouse = settings.warehouse.model_copy(
        update={"duckdb": duckdb.model_copy(update={"lock_timeout": wait})}
    )
    return settings.model_copy(update={"warehouse": warehouse})


def gather(settings: Settings, now: datetime | None = None) -> DashboardData:
    """Read everything the page shows. No published marts yet: :class:`PlatformError`."""
    now = now or datetime.now(UTC)
    settings = _briefly(settings)
    warehouse = make_warehouse(settings, read_only=True)
    sales = read_sales(settings, warehouse)
    return DashboardData(
        generated_at=now,
        profile=settings.profile,
        warehouse=describe_warehouse(settings),
        sales=sales,
        health=read_platform_health(settings, warehouse, now.date()),
    )


def describe_warehouse(settings: Settings) -> str:
    if settings.profile == "gcp":
        project = settings.gcp.project or "(no project)"
        return f"BigQuery {project}.{settings.warehouse.analytics_dataset}"
    return f"DuckDB {settings.serving_path.resolve()}"


def read_sales(settings: Settings, warehouse: Warehouse) -> Sales:
    """The figures of the published marts; none published yet: the warehouse's error
    saying to run ``ey-platform transform``."""

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return warehouse.read_marts(sql)[1]

    ((revenue, items, orders),) = rows(_TOTALS)
    return Sales(
        revenue_total=_money(revenue),
        items_total=_count(items),
        orders_total=_count(orders),
        by_day=[(day, _money(r), _count(n)) for day, r, n in rows(_BY_DAY)],
        by_category=[(str(c), _money(r), _count(n)) for c, r, n in rows(_BY_CATEGORY)],
        top_products=[
            (_count(pid), str(title), _money(r), _count(n))
            for pid, title, r, n in rows(_TOP_PRODUCTS)
        ],
        basket_sizes=[(_count(size), _count(n)) for size, n in rows(_BASKETS)],
        orders_by_user=[
            (_count(uid), str(name), _count(n), _money(r)) for uid, name, n, r in rows(_BY_USER)
        ],
    )


def _money(value: Any) -> Decimal:
    """A warehouse's amount (Decimal, or None for the sum of nothing) as a Decimal."""
    return Decimal(0) if value is None else Decimal(str(value))


def _count(value: Any) -> int:
    return 0 if value is None else int(value)


def read_platform_health(settings: Settings, warehouse: Warehouse, today: date) -> PlatformHealth:
    """The health strip. Each part that cannot be read is a failed finding of its own."""
    from ey_platform.wiring import read_health  # wiring may call the dashboard itself

    problems: list[Finding] = []

    def read(area: str, what: Callable[[], T]) -> T | None:
        try:
            return what()
        except PlatformError as exc:
            problems.append(Finding(area, "unreadable", "fail", str(exc)))
            return None

    since = today - timedelta(days=ACTIVITY_DAYS - 1)
    findings = read("health", lambda: read_health(settings).findings) or []
    layers = read("layers", lambda: warehouse.mart_summary().layers) or []
    activity = read("cart activity", lambda: warehouse.cart_activity(since)) or []
    backlog, dead = read("stream", lambda: _bus_counts(settings)) or (None, None)
    return PlatformHealth([*findings, *problems], layers, backlog, dead, activity)


def _bus_counts(settings: Settings) -> tuple[int | None, int | None]:
    """(backlog, dead letters); zeros before anything was published, None where the bus
    cannot count."""
    bus = open_bus_read_only(settings)
    if bus is None:
        return 0, 0
    try:
        stats = bus_stats(bus)
    finally:
        bus.close()
    return (None, None) if stats is None else (stats.backlog, stats.dead_letters)


def render(data: DashboardData) -> str:
    """The page, one HTML document: Plotly's bundled JavaScript inlined once, each
    figure drawn by an inline script of its own, nothing to fetch (:mod:`.charts`)."""
    return charts.page(data)
