"""The named reads of the warehouse, in SQL that DuckDB and BigQuery both run, and the
writes that replace one row of the platform's own tables (runs, incidents).

Each backend inherits :class:`SQLReads` and says how it names a table and how it runs
a query; the SQL of every read is written here, once. "The latest observed state of
a cart" is not written here either: it is the ``cart_states`` view of the raw layer
(``raw_schema.json``), which the reads and ``fact_orders`` select from.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from ey_platform.warehouse.base import (
    CartState,
    Incident,
    MartSummary,
    QualityResult,
    RunRecord,
)
from ey_platform.warehouse.raw_schema import CART_STATES

LAYERS: Final[tuple[tuple[str, str, str], ...]] = (
    ("raw", "raw", "products"),
    ("raw", "raw", "users"),
    ("raw", "raw", "carts_events"),
    ("staging", "build", "stg_products"),
    ("staging", "build", "stg_users"),
    ("staging", "build", "stg_cart_events"),
    ("staging", "build", "stg_cart_states"),
    ("intermediate", "build", "int_products_latest"),
    ("intermediate", "build", "int_users_latest"),
    ("snapshot", "build", "products_snapshot"),
    ("marts", "analytics", "dim_products"),
    ("marts", "analytics", "dim_users"),
    ("marts", "analytics", "fact_orders"),
    ("marts", "analytics", "fact_order_totals"),
)
"""The tables of :meth:`SQLReads.mart_summary`: (layer, dataset: raw, build or analytics,
table), from the raw layer to the published marts."""

_LIVE = "event_type <> 'cart_deleted'"
_FINISHED = ("loaded", "unchanged")


class SQLReads(ABC):
    """The reads of :class:`~ey_platform.warehouse.base.Warehouse` that are one query."""

    raw: str
    analytics: str
    build: str

    @abstractmethod
    def table(self, name: str) -> str:
        """A raw table or view, named for SQL."""

    @abstractmethod
    def analytics_table(self, name: str) -> str:
        """A published mart, named for SQL."""

    @abstractmethod
    def build_table(self, name: str) -> str:
        """A model of the transform in the build dataset, named for SQL."""

    @abstractmethod
    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read-only query and return its rows."""

    def partition_runs(self, entity: str, day: date) -> set[str]:
        rows = self.query(
            f"SELECT DISTINCT _run_id FROM {self.table(entity)} WHERE _ingestion_date = ?", [day]
        )
        return {r[0] for r in rows}

    def latest_day_rows(self, entity: str) -> tuple[date, int] | None:
        table = self.table(entity)
        rows = self.query(
            f"SELECT _ingestion_date, count(*) FROM {table} WHERE _ingestion_date = "
            f"(SELECT max(_ingestion_date) FROM {table}) GROUP BY 1"
        )
        return (rows[0][0], int(rows[0][1])) if rows else None

    @abstractmethod
    def _replace(self, table: str, key: dict[str, Any], row: dict[str, Any]) -> None:
        """Delete the rows of a raw ``table`` that match ``key`` and insert ``row``, in one
        transaction."""

    def record_run(self, run: RunRecord) -> None:
        self._replace("_pipeline_runs", {"run_id": run.run_id, "entity": run.entity}, run.row())

    def record_incident(self, incident: Incident) -> None:
        self._replace("_incidents", {"incident": incident.incident}, incident.row())

    def recent_day_rows(self, entity: str, days: int = 7) -> list[tuple[date, int]]:
        # Reads the _ingestion_date column only: 8 bytes a row on BigQuery.
        rows = self.query(
            f"SELECT _ingestion_date, count(*) FROM {self.table(entity)} "
            f"GROUP BY 1 ORDER BY 1 DESC LIMIT {int(days)}"
        )
        return [(day, int(count)) for day, count in rows]

    def last_runs(self) -> list[RunRecord]:
        names = RunRecord.columns()
        rows = self._latest("_pipeline_runs", names, "job, entity", "started_at DESC, run_id DESC")
        return [RunRecord.from_row(dict(zip(names, row, strict=True))) for row in rows]

    def _latest(self, table: str, names: list[str], key: str, order: str) -> list[tuple[Any, ...]]:
        """The ``names`` of the first row of each ``key`` of a raw table, by ``order``."""
        return self.query(
            f"SELECT {', '.join(names)} FROM ("
            f"SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY {order}) AS nth "
            f"FROM {self.table(table)}) AS latest WHERE nth = 1 ORDER BY {key}"
        )

    def loaded_at(self, tables: Sequence[str]) -> dict[str, datetime | None]:
        newest = " UNION ALL ".join(
            f"SELECT {i} AS n, max(_loaded_at) AS newest FROM {self.table(name)}"
            for i, name in enumerate(tables)
        )
        found = dict(self.query(newest)) if tables else {}
        return {name: found.get(i) for i, name in enumerate(tables)}

    def latest_quality(self) -> list[QualityResult]:
        names = QualityResult.columns()
        rows = self._latest("_quality_results", names, "check_name, entity", "checked_at DESC")
        return [QualityResult(**dict(zip(names, row, strict=True))) for row in rows]

    def open_incidents(self) -> list[Incident]:
        names = Incident.columns()
        rows = self.query(
            f"SELECT {', '.join(names)} FROM {self.table('_incidents')} "
            f"WHERE resolved_at IS NULL ORDER BY opened_at"
        )
        return [Incident(**dict(zip(names, row, strict=True))) for row in rows]

    def events_loaded_since(self, since: datetime) -> int:
        # Reads the _loaded_at column of every partition (8 bytes an event on BigQuery):
        # it is for `stream status`, run by hand, not for a schedule.
        rows = self.query(
            f"SELECT count(*) FROM {self.table('carts_events')} WHERE _loaded_at > ?", [since]
        )
        return int(rows[0][0])

    def finished_entities(self, job: str, day: date) -> set[str]:
        statuses = ", ".join(f"'{status}'" for status in _FINISHED)
        rows = self.query(
            f"SELECT DISTINCT entity FROM {self.table('_pipeline_runs')} "
            f"WHERE job = ? AND ingestion_date = ? AND status IN ({statuses})",
            [job, day],
        )
        return {entity for (entity,) in rows}

    def cart_states(self) -> list[CartState]:
        return self._cart_states("")

    def live_cart_states(self) -> list[CartState]:
        return self._cart_states(f" WHERE {_LIVE}")

    def _cart_states(self, where: str) -> list[CartState]:
        rows = self.query(
            f"SELECT cart_id, content_hash, top_version FROM {self.table(CART_STATES)}{where}"
        )
        return [(int(cart), digest, int(version)) for cart, digest, version in rows]

    def mart_summary(self) -> MartSummary:
        fact_orders = self.analytics_table("fact_orders")
        return MartSummary(
            layers=self._layer_rows(),
            events_table=f"{self.raw}.carts_events",
            event_carts=self._count(
                f"SELECT count(*) FROM {self.table(CART_STATES)} WHERE {_LIVE}"
            ),
            fact_carts=self._count(f"SELECT count(DISTINCT cart_id) FROM {fact_orders}"),
            revenue=self._revenue(),
        )

    def _count(self, sql: str) -> int:
        return int(self.query(sql)[0][0])

    def _layer_rows(self) -> list[tuple[str, str, int]]:
        """Every table of :data:`LAYERS` with its row count, in one query."""
        named = {
            "raw": (self.raw, self.table),
            "build": (self.build, self.build_table),
            "analytics": (self.analytics, self.analytics_table),
        }
        tables = [
            (layer, f"{named[dataset][0]}.{name}", named[dataset][1](name))
            for layer, dataset, name in LAYERS
        ]
        counts = " UNION ALL ".join(
            f"SELECT {i} AS layer, count(*) AS n FROM {table}"
            for i, (_, _, table) in enumerate(tables)
        )
        rows = dict(self.query(counts))
        return [(layer, shown, int(rows[i])) for i, (layer, shown, _) in enumerate(tables)]

    def _revenue(self) -> list[tuple[str, Decimal, int]]:
        rows = self.query(
            f"""SELECT p.category, sum(f.line_amount), sum(f.quantity)
            FROM {self.analytics_table("fact_orders")} AS f
            JOIN {self.analytics_table("dim_products")} AS p ON p.product_key = f.product_key
            GROUP BY p.category ORDER BY p.category"""
        )
        return [(category, Decimal(str(amount)), int(items)) for category, amount, items in rows]

    def cart_activity(self, since: date) -> list[tuple[date, str, int]]:
        # Two columns of the partitions from ``since`` on: the dashboard's bytes on BigQuery
        # grow with the days shown, not with the table.
        rows = self.query(
            f"SELECT _event_date, event_type, count(*) FROM {self.table('carts_events')} "
            "WHERE _event_date >= ? GROUP BY _event_date, event_type "
            "ORDER BY _event_date, event_type",
            [since],
        )
        return [(day, kind, int(events)) for day, kind, events in rows]
