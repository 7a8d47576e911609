"""The stream's sink on BigQuery: one ``MERGE`` per batch, keyed on ``event_id``.

The batch is an array query parameter, in chunks that fit a request. A statement is
atomic, so a redelivered batch (the consumer died after a commit, before the ack)
inserts nothing twice, and no
streaming buffer is involved (rows are visible and final at once). The Storage Write
API with offsets would deduplicate only within one stream's life; a new consumer
process opens a new stream, so it cannot replace the key check. The ``MERGE`` looks for
the batch's events only among the batch's carts (``@carts``, constants to BigQuery):
the table is clustered by ``cart_id`` then ``event_id``, so within each day's
partition it reads the blocks of those carts rather than the whole ``event_id`` column:
a small batch reads little, though at least a block per day of history, and a batch
whose carts spread over every block still reads them all. Bounding it by date instead
would miss an event republished days later after a lost poller state; an event's id
fixes its cart, so the cart bound misses none.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import orjson

from ey_platform.ops.context import current_job, job_context
from ey_platform.warehouse.base import EventRows
from ey_platform.warehouse.raw_schema import Column, Table, raw_table

if TYPE_CHECKING:
    from google.cloud import bigquery

    from ey_platform.warehouse.bigquery.warehouse import BigQueryWarehouse

# How a field of the event ``e`` (its parsed JSON) is read, by its column's type.
_READ = {
    "STRING": "JSON_VALUE(e, '$.{name}')",
    "INT64": "CAST(JSON_VALUE(e, '$.{name}') AS INT64)",
    "TIMESTAMP": "TIMESTAMP(JSON_VALUE(e, '$.{name}'))",
    "JSON": "JSON_QUERY(e, '$.{name}')",
}
# The value of each column that is not read as is from the event (``s``, the batch).
_VALUES = {
    "cart": "IF(s.event_type = 'cart_deleted', NULL, s.cart)",
    "_bus_message_id": "s.message_id",
    "_bus_publish_time": "s.publish_time",
    "_loaded_at": "CURRENT_TIMESTAMP()",
    "_event_date": "DATE(s.published_at)",
}


MAX_PARAMETER_BYTES = 5 << 20
"""Event bytes per ``MERGE`` at most. BigQuery refuses a request over 10 MB, query
parameters included, and the parameter's JSON adds about half again to the events: a
20,000-event batch of 450-byte events made a 13.1 MB request."""


def _chunks(rows: EventRows, max_bytes: int) -> Iterator[EventRows]:
    """``rows`` in consecutive chunks of at most ``max_bytes`` of event data (one event
    larger than that is a chunk of its own)."""
    start, size = 0, 0
    for i, data in enumerate(rows.data):
        if size and size + len(data) > max_bytes:
            yield _slice(rows, start, i)
            start, size = i, 0
        size += len(data)
    if start < len(rows.data):
        yield _slice(rows, start, len(rows.data))


def _slice(rows: EventRows, start: int, end: int) -> EventRows:
    return EventRows(
        rows.data[start:end], rows.message_ids[start:end], rows.publish_times[start:end]
    )


def _field(column: Column) -> str:
    return f"{_READ[column.type].format(name=column.name)} AS {column.name}"


def _merge_sql(target: str, table: Table) -> str:
    """The ``MERGE`` of the batch ``@rows`` into ``target``: each event is parsed once,
    and a duplicate inside the batch lands once."""
    fields = ",\n           ".join(_field(c) for c in table.fields)
    values = ", ".join(_VALUES.get(c.name, f"s.{c.name}") for c in table.columns)
    return f"""MERGE {target} AS t
    USING (
        SELECT {fields},
               message_id, publish_time
        FROM (SELECT PARSE_JSON(r.data) AS e, r.message_id, r.publish_time
              FROM UNNEST(@rows) AS r)
        QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY message_id) = 1
    ) AS s
    ON t.cart_id IN UNNEST(@carts) AND t.event_id = s.event_id
    WHEN NOT MATCHED THEN INSERT ({", ".join(table.names)})
    VALUES ({values})"""


class BigQueryEventSink:
    """One ``MERGE`` per batch, keyed on ``event_id``: see the module."""

    def __init__(self, warehouse: BigQueryWarehouse) -> None:
        self.wh = warehouse
        self._sql = _merge_sql(warehouse.table("carts_events"), raw_table("carts_events"))

    def write(self, rows: EventRows) -> int:
        """One ``MERGE`` per chunk of the batch that fits a request (see
        :data:`MAX_PARAMETER_BYTES`). Each is atomic and the batch is acknowledged only
        after the last: a crash between two redelivers the batch, and the chunks that
        had landed insert nothing again."""
        return sum(self._merge(chunk) for chunk in _chunks(rows, MAX_PARAMETER_BYTES))

    def _merge(self, rows: EventRows) -> int:
        # The consumer writes from a thread of its own, which starts with no job (a
        # new thread's context is empty); what it writes is the consumer's.
        with job_context(current_job() or "consume"):
            job, _ = self.wh.run(self._sql, named=[rows_parameter(rows), carts_parameter(rows)])
        return int(job.num_dml_affected_rows or 0)

    def release(self) -> None:
        """Nothing is held between batches."""


def carts_parameter(rows: EventRows) -> bigquery.ArrayQueryParameter:
    """The batch's cart ids as the ``@carts`` parameter: the clusters the ``MERGE``
    reads. Parsed here (the events are validated already): about 2 µs an event, against
    seconds for the statement."""
    from google.cloud import bigquery

    carts = sorted({orjson.loads(data)["cart_id"] for data in rows.data})
    return bigquery.ArrayQueryParameter("carts", "INT64", carts)


def rows_parameter(rows: EventRows) -> bigquery.ArrayQueryParameter:
    """The batch as the ``@rows`` parameter of the ``MERGE``."""
    from google.cloud import bigquery

    return bigquery.ArrayQueryParameter(
        "rows",
        "STRUCT",
        [
            bigquery.StructQueryParameter(
                None,
                bigquery.ScalarQueryParameter("data", "STRING", data.decode()),
                bigquery.ScalarQueryParameter("message_id", "STRING", message_id),
                bigquery.ScalarQueryParameter("publish_time", "TIMESTAMP", published),
            )
            for data, message_id, published in zip(
                rows.data, rows.message_ids, rows.publish_times, strict=True
            )
        ],
    )
