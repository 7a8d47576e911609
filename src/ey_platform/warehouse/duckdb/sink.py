"""The stream's sink on DuckDB: event batches into ``carts_events``, once per event id."""

from __future__ import annotations

import contextlib
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING

import duckdb
import orjson

from ey_platform.warehouse.base import EventRows
from ey_platform.warehouse.duckdb.connection import error, transaction
from ey_platform.warehouse.duckdb.ddl import TYPES
from ey_platform.warehouse.raw_schema import Table, raw_table

if TYPE_CHECKING:
    from ey_platform.warehouse.duckdb.warehouse import DuckDBWarehouse

# The value of each column that is not a field of the event (``e``, its parsed JSON).
_VALUES = {
    "cart": "CASE WHEN e.event_type = 'cart_deleted' THEN NULL ELSE e.cart END",
    "_bus_message_id": "message_id",
    "_bus_publish_time": "publish_time",
    "_loaded_at": "now()",
    "_event_date": "CAST(e.published_at AT TIME ZONE 'UTC' AS DATE)",
}


def _insert_sql(target: str, table: Table) -> str:
    """The insert of a registered batch ``incoming`` into ``target``: each event is
    parsed once, into a struct of the event's fields, and a duplicate inside the batch
    lands once."""
    shape = orjson.dumps({c.name: TYPES[c.type] for c in table.fields}).decode()
    values = ", ".join(_VALUES.get(c.name, f"e.{c.name}") for c in table.columns)
    return f"""INSERT OR IGNORE INTO {target} ({", ".join(table.names)})
        SELECT {values}
        FROM (SELECT json_transform(data, '{shape}') AS e, message_id, publish_time
              FROM incoming)
        QUALIFY row_number() OVER (PARTITION BY e.event_id ORDER BY message_id) = 1"""


class DuckDBEventSink:
    """Inserts event batches through Arrow, skipping stored ids (``INSERT OR IGNORE`` on
    the primary key, in the same transaction). Keeps its connection for up to
    ``hold_seconds`` between batches, then lets go so a batch load can take its turn."""

    def __init__(self, warehouse: DuckDBWarehouse, hold_seconds: float) -> None:
        self.wh = warehouse
        self.hold_seconds = hold_seconds
        self._sql = _insert_sql(warehouse.table("carts_events"), raw_table("carts_events"))
        self._con: duckdb.DuckDBPyConnection | None = None
        self._opened = 0.0
        self._held = ExitStack()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = self._held.enter_context(self.wh.connect())
            # Every commit is in the WAL, durable; checkpointing it into the table at
            # DuckDB's default threshold (16 MB) slows the commits of event batches. The
            # file is checkpointed when the sink lets go of it (at most hold_seconds).
            # Database-wide, so reset when it lets go: a batch load in the same process
            # (``up``) keeps DuckDB's default.
            self._con.execute("SET checkpoint_threshold = '256MB'")
            self._opened = time.monotonic()
        return self._con

    def write(self, rows: EventRows) -> int:
        import pyarrow as pa

        batch = pa.table(
            {
                # UTF-8 checked by Arrow in C, not decoded message by message in Python
                "data": pa.array(rows.data, pa.binary()).cast(pa.string()),
                "message_id": pa.array(rows.message_ids, pa.string()),
                "publish_time": pa.array(rows.publish_times, pa.timestamp("us", tz="UTC")),
            }
        )
        con = self._connection()
        con.register("incoming", batch)
        try:
            inserted = self._insert(con)
        except duckdb.Error as exc:
            self.release()
            raise error(self.wh.path, exc, "writing events into") from exc
        finally:
            if self._con is not None:
                con.unregister("incoming")
        if time.monotonic() - self._opened > self.hold_seconds:
            self.release()
        return inserted

    def _insert(self, con: duckdb.DuckDBPyConnection) -> int:
        with transaction(con):
            row = con.execute(self._sql).fetchone()
        return int(row[0]) if row else 0

    def release(self) -> None:
        try:
            if self._con is not None:
                with contextlib.suppress(duckdb.Error):  # a broken connection is closed anyway
                    self._con.execute("RESET checkpoint_threshold")
        finally:
            self._held.close()
            self._con = None
