"""How the dashboard looks: its Plotly figures, from plain rows, and the HTML around them.

Only :mod:`plotly.graph_objects`: Plotly Express would need pandas. Amounts arrive as
:class:`~decimal.Decimal`; bars are drawn from floats, but every label shows the exact
amount to the cent. A figure with no rows still draws its axes and says so, so that a
new platform's page is whole. The page fetches nothing: Plotly's JavaScript is inlined
once, the fonts are the reader's own, and a Content-Security-Policy forbids the rest.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, date
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Final

import plotly.graph_objects as go  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from ey_platform.ops.health import Finding
    from ey_platform.serving.dashboard import DashboardData, PlatformHealth, Sales

FONT: Final = 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif'
CONFIG: Final[dict[str, Any]] = {
    "displaylogo": False,
    "responsive": True,
    "showSendToCloud": False,
    "plotlyServerURL": "",
}
"""No Plotly logo, no link to Plotly's cloud: nothing on the page points off it."""
# The page may run its own inline scripts and styles and show the images it draws (the
# modebar's PNG download); it may fetch nothing, whatever a library in it would try.
CSP: Final = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; base-uri 'none'; form-action 'none'"
)
HEIGHT: Final = 340
EVENT_COLORS: Final = {
    "cart_created": "#2e7d32",
    "cart_updated": "#1565c0",
    "cart_deleted": "#c62828",
}
LAYER_COLORS: Final = {
    "raw": "#8d6e63",
    "staging": "#5c6bc0",
    "intermediate": "#26a69a",
    "snapshot": "#ffa726",
    "marts": "#ab47bc",
}
# Days as categories, in date order: a bar a day, as wide with one day as with ninety.
_DAYS: Final[dict[str, Any]] = {"type": "category", "categoryorder": "category ascending"}
_AREAS: Final = ("job", "freshness", "stream", "quality", "incident", "warehouse")
_RANK: Final = {"ok": 0, "warn": 1, "fail": 2}
_CENT: Final = Decimal("0.01")


def cents(amount: Decimal) -> Decimal:
    """An amount to the cent, half up, as a till rounds: what the page prints."""
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)


def money(amount: Decimal) -> str:
    """``1234.5`` as ``1,234.50``: for labels; the totals' elements have no separator."""
    return f"{cents(amount):,}"


def to_div(figure: go.Figure, div_id: str) -> str:
    """The figure as a ``<div>`` and the inline script that draws it with the Plotly
    already in the page: no Plotly JavaScript, no MathJax, no link out."""
    div: str = figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        div_id=div_id,
        config=CONFIG,
        default_height=f"{HEIGHT}px",
    )
    return div


def _figure(traces: Sequence[Any], *, empty: bool, **layout: Any) -> go.Figure:
    figure = go.Figure(data=list(traces))
    figure.update_layout(
        {
            "template": "plotly_white",
            "font": {"family": FONT, "size": 12},
            "height": HEIGHT,
            "margin": {"l": 60, "r": 20, "t": 36, "b": 50},
            "showlegend": False,
            **layout,
        }
    )
    if empty:
        figure.add_annotation(
            text="no data yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5
        )
    return figure


def _bars(labels: Sequence[str], values: Sequence[float], texts: Sequence[str], **kw: Any) -> Any:
    """Horizontal bars, the first row on top, each labelled with its text."""
    return go.Bar(
        y=list(reversed(labels)),
        x=list(reversed(values)),
        text=list(reversed(texts)),
        orientation="h",
        textposition="auto",
        hovertemplate="%{y}<br>%{text}<extra></extra>",
        **kw,
    )


def _label(text: str) -> str:
    """Text from the warehouse as Plotly shows it: Plotly reads tags in labels (``<b>``,
    ``<a href>``) and decodes entities, so a name is escaped to be shown as it is."""
    return html.escape(text, quote=False)


def _distinct(labels: Sequence[str], keys: Sequence[object]) -> list[str]:
    """Labels made unique with their key where two share a name (Plotly would draw both
    rows as one bar), escaped."""
    named = [f"{n} (#{k})" if labels.count(n) > 1 else n for n, k in zip(labels, keys, strict=True)]
    return [_label(n) for n in named]


def _counts(title: str, values: Iterable[int]) -> dict[str, Any]:
    """An axis of whole numbers: a tick for each one up to ten, Plotly's ticks beyond
    (which never fall between two whole numbers there)."""
    axis: dict[str, Any] = {"title": title, "rangemode": "tozero"}
    if max(values, default=0) <= 10:
        axis["dtick"] = 1
    return axis


def revenue_by_day(rows: Sequence[tuple[date, Decimal, int]]) -> go.Figure:
    """(day, revenue, orders): bars of revenue."""
    bars = go.Bar(
        x=[day.isoformat() for day, _, _ in rows],
        y=[float(amount) for _, amount, _ in rows],
        text=[f"{money(amount)}<br>{orders:,} orders" for _, amount, orders in rows],
        hovertemplate="%{x}<br>%{text}<extra></extra>",
        textposition="none",
        marker_color="#1f4e79",
    )
    axes = {"xaxis": _DAYS | {"title": "order date"}, "yaxis": {"title": "revenue"}}
    return _figure([bars], empty=not rows, **axes)


def revenue_by_category(rows: Sequence[tuple[str, Decimal, int]]) -> go.Figure:
    """(category, revenue, items), largest first."""
    texts = [f"{money(amount)} · {items:,} items" for _, amount, items in rows]
    amounts = [float(amount) for _, amount, _ in rows]
    bars = _bars([_label(c) for c, _, _ in rows], amounts, texts, marker_color="#1f4e79")
    return _figure([bars], empty=not rows, xaxis={"title": "revenue"}, yaxis={"automargin": True})


def top_products(rows: Sequence[tuple[int, str, Decimal, int]]) -> go.Figure:
    """(product id, title, revenue, items), largest first."""
    labels = _distinct([title for _, title, _, _ in rows], [pid for pid, _, _, _ in rows])
    texts = [f"{money(amount)} · {items:,} items" for _, _, amount, items in rows]
    amounts = [float(amount) for _, _, amount, _ in rows]
    bars = _bars(labels, amounts, texts, marker_color="#00838f")
    return _figure([bars], empty=not rows, xaxis={"title": "revenue"}, yaxis={"automargin": True})


def basket_sizes(rows: Sequence[tuple[int, int]]) -> go.Figure:
    """(items in an order, orders): how many orders hold how many items."""
    bars = go.Bar(
        x=[items for items, _ in rows],
        y=[orders for _, orders in rows],
        hovertemplate="%{y} orders of %{x} items<extra></extra>",
        marker_color="#6a1b9a",
    )
    sizes = [items for items, _ in rows]
    axes = {
        "xaxis": _counts("items in the order", sizes),
        "yaxis": _counts("orders", [orders for _, orders in rows]),
    }
    return _figure([bars], empty=not rows, **axes)


def orders_by_user(rows: Sequence[tuple[int, str, int, Decimal]]) -> go.Figure:
    """(user id, username, orders, revenue), most orders first."""
    bars = go.Bar(
        x=_distinct([name for _, name, _, _ in rows], [uid for uid, _, _, _ in rows]),
        y=[orders for _, _, orders, _ in rows],
        text=[f"{orders:,} orders · {money(amount)}" for _, _, orders, amount in rows],
        hovertemplate="%{x}<br>%{text}<extra></extra>",
        textposition="none",
        marker_color="#ef6c00",
    )
    axes = {
        "xaxis": {"title": "user", "type": "category"},
        "yaxis": _counts("orders", [orders for _, _, orders, _ in rows]),
    }
    return _figure([bars], empty=not rows, **axes)


def cart_activity(rows: Sequence[tuple[date, str, int]]) -> go.Figure:
    """(day, event type, events): stacked bars of carts created, updated and deleted."""
    kinds = [*EVENT_COLORS, *sorted({kind for _, kind, _ in rows} - set(EVENT_COLORS))]
    traces = [
        go.Bar(
            name=kind.removeprefix("cart_"),
            x=[day.isoformat() for day, k, _ in rows if k == kind],
            y=[events for _, k, events in rows if k == kind],
            marker_color=EVENT_COLORS.get(kind, "#757575"),
            hovertemplate=f"%{{x}}<br>%{{y}} {kind.removeprefix('cart_')}<extra></extra>",
        )
        for kind in kinds
    ]
    per_day: dict[date, int] = {}
    for day, _, events in rows:
        per_day[day] = per_day.get(day, 0) + events
    axes = {"xaxis": _DAYS | {"title": "event date"}, "yaxis": _counts("events", per_day.values())}
    return _figure(traces, empty=not rows, barmode="stack", showlegend=True, **axes)


def layer_rows(rows: Sequence[tuple[str, str, int]]) -> go.Figure:
    """(layer, table, rows), raw first: one bar per table, coloured by its layer."""
    colors = [LAYER_COLORS.get(layer, "#757575") for layer, _, _ in rows]
    bars = _bars(
        [table for _, table, _ in rows],
        [count for _, _, count in rows],
        [f"{count:,} rows" for _, _, count in rows],
        marker_color=list(reversed(colors)),
    )
    height = max(HEIGHT, 22 * len(rows) + 80)
    return _figure([bars], empty=not rows, height=height, yaxis={"automargin": True})


def page(data: DashboardData) -> str:
    """The whole document (see :func:`ey_platform.serving.dashboard.render`)."""
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

    body = "\n".join([_header(data), _totals(data.sales), _health(data.health), _charts(data)])
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>EY Data Platform dashboard</title>\n<style>{_CSS}</style>\n"
        f"<script>{get_plotlyjs()}</script>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _header(data: DashboardData) -> str:
    when = data.generated_at.astimezone(UTC)
    return (
        "<header><h1>EY Data Platform</h1>\n"
        f'<p class="meta">Generated <time id="generated-at" datetime="{when.isoformat()}">'
        f'{when:%Y-%m-%d %H:%M:%S}Z</time> from <span id="warehouse">{_e(data.warehouse)}'
        f'</span> (profile <span id="profile">{_e(data.profile)}</span>)</p></header>'
    )


def _tile(css: str, label: str, value: str, value_id: str = "") -> str:
    shown_id = f' id="{value_id}"' if value_id else ""
    return (
        f'<div class="{css}"><span class="label">{_e(label)}</span>'
        f'<span class="value"{shown_id}>{_e(value)}</span></div>'
    )


def _totals(sales: Sales) -> str:
    """The totals, to the cent and without separators in their elements
    (``revenue-total``, ``items-total``): a reader, a test or a script takes them as is."""
    tiles = [
        _tile("kpi", "Revenue", str(cents(sales.revenue_total)), "revenue-total"),
        _tile("kpi", "Items sold", str(sales.items_total), "items-total"),
        _tile("kpi", "Orders", str(sales.orders_total), "orders-total"),
        _tile("kpi", "Items per order", _maybe(sales.items_per_order), "items-per-order"),
        _tile("kpi", "Revenue per order", _maybe(sales.revenue_per_order), "revenue-per-order"),
    ]
    return f'<section class="kpis" id="totals">{"".join(tiles)}</section>'


def _health(health: PlatformHealth) -> str:
    """The strip: the worst status of each area, the bus's counts, every finding, and
    the rows of each layer."""
    found = health.findings
    areas = [a for a in _AREAS if any(f.area == a for f in found)]
    areas += sorted({f.area for f in found} - set(areas))
    tiles = [_tile(f"tile {_worst(found, a)}", a, _worst(found, a)) for a in areas]
    tiles.append(_tile("tile", "backlog", _maybe(health.backlog), "backlog"))
    dead = "tile fail" if health.dead_letters else "tile"
    tiles.append(_tile(dead, "dead letters", _maybe(health.dead_letters), "dead-letters"))
    rows = "".join(
        f'<tr><td>{_e(f.area)}</td><td>{_e(f.subject)}</td><td class="status-{f.status}">'
        f"{_e(f.status)}</td><td>{_e(f.detail)}</td></tr>"
        for f in found
    )
    layers = to_div(layer_rows(health.layers), "chart-layer-rows")
    return (
        f'<section id="health"><h2>Health</h2>\n<div class="tiles">{"".join(tiles)}</div>\n'
        '<div class="grid"><div class="card"><h2>Findings</h2><table id="findings"><thead>'
        "<tr><th>area</th><th>what</th><th>status</th><th>detail</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>\n"
        f'<div class="card"><h2>Rows per layer</h2>{layers}</div></div></section>'
    )


def _worst(findings: Sequence[Finding], area: str) -> str:
    return max((f.status for f in findings if f.area == area), key=_RANK.__getitem__)


def _charts(data: DashboardData) -> str:
    sales = data.sales
    shown = [
        ("chart-revenue-by-day", "Revenue by day", revenue_by_day(sales.by_day)),
        (
            "chart-revenue-by-category",
            "Revenue by category",
            revenue_by_category(sales.by_category),
        ),
        ("chart-top-products", "Top products", top_products(sales.top_products)),
        ("chart-basket-size", "Basket size", basket_sizes(sales.basket_sizes)),
        ("chart-orders-by-user", "Orders by user", orders_by_user(sales.orders_by_user)),
        ("chart-cart-activity", "Cart activity", cart_activity(data.health.cart_activity)),
    ]
    cards = "\n".join(
        f'<div class="card"><h2>{_e(title)}</h2>{to_div(figure, div_id)}</div>'
        for div_id, title, figure in shown
    )
    return f'<section id="charts" class="grid">\n{cards}\n</section>'


def _maybe(value: object | None) -> str:
    return "n/a" if value is None else str(value)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


_CSS: Final = f"""
body {{ font-family: {FONT}; margin: 0 auto; max-width: 1400px; padding: 16px 24px;
  color: #1d2733; background: #f4f6f9; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }} h2 {{ font-size: 15px; margin: 0 0 8px; }}
.meta {{ color: #5b6675; margin: 0 0 16px; }}
.kpis, .tiles {{ display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 16px; }}
.kpi, .tile, .card {{ background: #fff; border-radius: 6px; padding: 10px 16px;
  box-shadow: 0 1px 2px rgba(0,0,0,.08); }}
.kpi, .tile {{ min-width: 110px; }}
.kpi .value {{ display: block; font-size: 24px; font-weight: 600; }}
.tile .value {{ font-weight: 600; }} .label {{ display: block; color: #5b6675; font-size: 12px; }}
.ok {{ border-left: 4px solid #2e7d32; }} .warn {{ border-left: 4px solid #f9a825; }}
.fail {{ border-left: 4px solid #c62828; }}
.grid {{ display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px;
  margin-bottom: 16px; }}
@media (max-width: 1100px) {{ .grid {{ grid-template-columns: minmax(0, 1fr); }} }}
table {{ border-collapse: collapse; width: 100%; font-size: 13px; }}
td, th {{ text-align: left; padding: 3px 8px; border-bottom: 1px solid #e3e7ec;
  vertical-align: top; }}
td.status-ok {{ color: #2e7d32; }} td.status-warn {{ color: #a66d00; }}
td.status-fail {{ color: #c62828; font-weight: 600; }}
"""
CHART_IDS: Final = (
    "chart-layer-rows",
    "chart-revenue-by-day",
    "chart-revenue-by-category",
    "chart-top-products",
    "chart-basket-size",
    "chart-orders-by-user",
    "chart-cart-activity",
)
"""The ``id`` of every figure's element on the page."""
