"""The main job end to end, and the summary a person reads at a glance."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ey_platform.pipelines.stream import landed_states_sql
from ey_platform.source.client import FakeStoreClient
from ey_platform.warehouse.base import Warehouse

# (layer, dataset: raw or analytics, table)
LAYERS = (
    ("raw", "raw", "products"),
    ("raw", "raw", "users"),
    ("raw", "raw", "carts_events"),
    ("staging", "analytics", "stg_products"),
    ("staging", "analytics", "stg_users"),
    ("staging", "analytics", "stg_cart_events"),
    ("snapshot", "analytics", "products_snapshot"),
    ("marts", "analytics", "dim_products"),
    ("marts", "analytics", "dim_users"),
    ("marts", "analytics", "fact_orders"),
    ("marts", "analytics", "orders"),
)

_REVENUE = """
SELECT p.category, sum(f.line_amount), sum(f.quantity)
FROM {analytics}.fact_orders AS f
JOIN {analytics}.dim_products AS p ON p.product_key = f.product_key
GROUP BY p.category ORDER BY p.category
"""


@dataclass
class Summary:
    layers: list[tuple[str, str, int]]
    events_table: str
    source_carts: int
    event_carts: int
    fact_carts: int
    revenue: list[tuple[str, Decimal, int]]

    @property
    def reconciled(self) -> bool:
        return self.source_carts == self.event_carts == self.fact_carts

    @property
    def total_revenue(self) -> Decimal:
        return sum((r[1] for r in self.revenue), Decimal(0))


def summarize(warehouse: Warehouse, client: FakeStoreClient) -> Summary:
    """Counts at every layer, the cart reconciliation and revenue by category."""

    datasets = {"raw": warehouse.raw, "analytics": warehouse.analytics}

    def scalar(sql: str) -> Any:
        return warehouse.query(sql.format(**datasets))[0][0]

    live = landed_states_sql(warehouse.raw, alive_only=True)  # latest state, not deleted
    names = [(layer, f"{datasets[dataset]}.{table}") for layer, dataset, table in LAYERS]
    layers = [(layer, name, int(scalar(f"SELECT count(*) FROM {name}"))) for layer, name in names]
    return Summary(
        layers=layers,
        events_table=f"{warehouse.raw}.carts_events",
        source_carts=len(client.collection("/carts")),
        event_carts=int(scalar(f"SELECT count(*) FROM ({live}) AS live")),
        fact_carts=int(scalar("SELECT count(DISTINCT cart_id) FROM {analytics}.fact_orders")),
        revenue=[
            (c, Decimal(str(a)), int(q)) for c, a, q in warehouse.query(_REVENUE.format(**datasets))
        ],
    )
