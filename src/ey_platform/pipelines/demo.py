"""The main job's summary, read at a glance: rows at every layer, the carts reconciled
from the source to the marts, and revenue by category."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ey_platform.source.client import FakeStoreClient
from ey_platform.warehouse.base import MartSummary, Warehouse


@dataclass(frozen=True)
class Summary(MartSummary):
    """The warehouse's summary, and the number of carts the source holds."""

    source_carts: int = 0

    @property
    def reconciled(self) -> bool:
        return self.source_carts == self.event_carts == self.fact_carts

    @property
    def total_revenue(self) -> Decimal:
        return sum((amount for _, amount, _ in self.revenue), Decimal(0))


def summarize(warehouse: Warehouse, client: FakeStoreClient) -> Summary:
    return Summary(**vars(warehouse.mart_summary()), source_carts=len(client.collection("/carts")))
