"""The warehouse on BigQuery: datasets ``bq_raw`` and ``bq_analytics``.

Raw tables have the DuckDB tables' columns; ``id`` and ``_record_hash`` (virtual columns
in DuckDB) are computed at load. ``products`` and ``users`` are partitioned by
``_ingestion_date`` and clustered by ``id``; ``carts_events`` by ``_event_date`` and
clustered by ``cart_id, event_id``; ``_quarantine`` by ``_ingestion_date``.

**Batch loads.** Each landed part is loaded by a load job straight from its ``gs://`` URI
into a staging table of one STRING column (CSV with delimiter ``\\x01`` and no quoting:
JSON text never holds a raw control byte, so a line is one field, byte for byte). The jobs
run while the extraction goes on. The commit is one multi-statement transaction: check
the staged count against the landed records, delete the day, insert the staged lines
with the metadata columns, swap the day's quarantine. Any error rolls all of it back, so
readers see the old day or the new one, never a mix. Staging tables expire after a day
even if a crash leaves them behind.

**Streaming sink.** Each batch is one ``MERGE`` keyed on ``event_id``, with the batch as an
array query parameter: a statement is atomic, so a redelivered batch (the consumer died
after the commit, before the ack) inserts nothing twice, and no streaming buffer is
involved (rows are visible and final at once). The Storage Write API with offsets would
deduplicate only within one stream's life; a new consumer process opens a new stream, so
it cannot replace the key check. The ``MERGE`` reads ``event_id`` of the whole table
(narrow, clustered): bounding it by date would miss an event republished days later after
a lost poller state.

Statements are scripts with literal values where they must be: the values are the
platform's own (dates, counts, run ids, URIs), quoted by :func:`_string`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ey_platform.errors import ReconciliationError, WarehouseError
from ey_platform.gcp import api_errors
from ey_platform.lake.base import LakeObject
from ey_platform.warehouse.base import EventRows, LoadMeta, RunRecord

if TYPE_CHECKING:
    from google.cloud import bigquery
    from google.cloud.bigquery.table import RowIterator

log = logging.getLogger(__name__)

_STAGE_TTL = timedelta(days=1)
_MISMATCH = "reconciliation failed"


# Every raw table: schema, partition column, clustering. Terraform creates the same
# tables from this file (infra/terraform/bigquery.tf), so the two cannot drift apart.
TABLES_FILE = Path(__file__).with_name("bigquery_tables.json")
_LINE_SCHEMA = [{"name": "line", "type": "STRING", "mode": "NULLABLE"}]


def _tables() -> dict[str, dict[str, Any]]:
    return dict(orjson.loads(TABLES_FILE.read_bytes()))


def _schema(fields: list[dict[str, str]]) -> list[bigquery.SchemaField]:
    from google.cloud import bigquery

    return [bigquery.SchemaField(f["name"], f["type"], mode=f["mode"]) for f in fields]


_SAFE_TEXT = re.compile(r"[^\x00-\x1f]*")


def _string(value: str) -> str:
    """A BigQuery string literal of one of the platform's own values."""
    if not _SAFE_TEXT.fullmatch(value):
        raise WarehouseError(f"refusing a control character in a SQL literal: {value!r}")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return f"TIMESTAMP {_string(value.astimezone(UTC).isoformat())}"
    if isinstance(value, date):
        return f"DATE {_string(value.isoformat())}"
    return _string(str(value))


def _parameter(value: Any) -> Any:
    from google.cloud import bigquery

    kinds: list[tuple[type, str]] = [(bool, "BOOL"), (int, "INT64"), (float, "FLOAT64")]
    kinds += [(datetime, "TIMESTAMP"), (date, "DATE"), (str, "STRING")]
    for python_type, kind in kinds:
        if isinstance(value, python_type):
            return bigquery.ScalarQueryParameter(None, kind, value)  # type: ignore[arg-type]
    raise WarehouseError(f"no BigQuery type for a query parameter of type {type(value).__name__}")


class BigQueryWarehouse:
    """The production warehouse: ``raw`` and ``analytics`` datasets in the client's
    project."""

    def __init__(
        self,
        client: bigquery.Client,
        raw: str = "bq_raw",
        analytics: str = "bq_analytics",
        *,
        storage_read: bool = False,
    ) -> None:
        self.client = client
        self.project = client.project
        self.raw = raw
        self.analytics = analytics
        self.storage_read = storage_read

    def table(self, name: str) -> str:
        """A raw table (or staging table), fully qualified for SQL."""
        return f"`{self.project}.{self.raw}.{name}`"

    def setup(self) -> None:
        from google.api_core.exceptions import Conflict, NotFound
        from google.cloud import bigquery

        with api_errors(WarehouseError, f"BigQuery setup of {self.raw}, {self.analytics}"):
            for name in (self.raw, self.analytics):
                try:
                    self.client.get_dataset(name)
                except NotFound:
                    dataset = bigquery.Dataset(f"{self.project}.{name}")
                    dataset.location = self.client.location
                    self.client.create_dataset(dataset, exists_ok=True)
            for name, spec in _tables().items():
                table = bigquery.Table(
                    f"{self.project}.{self.raw}.{name}", schema=_schema(spec["schema"])
                )
                if spec["partition"]:
                    table.time_partitioning = bigquery.TimePartitioning(field=spec["partition"])
                table.clustering_fields = spec["cluster"]
                with contextlib.suppress(Conflict):  # created meanwhile by another process
                    self._add_new_columns(self.client.create_table(table, exists_ok=True), table)

    def _add_new_columns(self, existing: bigquery.Table, wanted: bigquery.Table) -> None:
        """Add the nullable columns a table created by an older version lacks (DDL, not a
        schema patch: the BigQuery emulator applies only the former to its data)."""
        have = {f.name for f in existing.schema}
        for field in wanted.schema:
            if field.name not in have and field.mode == "NULLABLE":
                self.run(
                    f"ALTER TABLE {self.table(existing.table_id)} "
                    f"ADD COLUMN IF NOT EXISTS {field.name} {field.field_type}"
                )

    def run(
        self, sql: str, params: Sequence[Any] = (), *, named: Sequence[Any] = ()
    ) -> tuple[bigquery.QueryJob, RowIterator]:
        """Run a statement or script to its end, with positional ``params`` (Python
        values) and ``named`` query parameters; errors become :class:`WarehouseError`."""
        from google.cloud import bigquery

        parameters = [*(_parameter(p) for p in params), *named]
        config = bigquery.QueryJobConfig(query_parameters=parameters)
        with api_errors(WarehouseError, "BigQuery"):
            job = self.client.query(sql, job_config=config)
            return job, job.result()

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        job, rows = self.run(sql, params or [])
        if self.storage_read:
            frame = job.to_arrow(create_bqstorage_client=True)
            return list(zip(*(col.to_pylist() for col in frame.columns), strict=True))
        return [tuple(row.values()) for row in rows]

    def begin_load(self, meta: LoadMeta) -> BigQueryPartitionLoad:
        return BigQueryPartitionLoad(self, meta)

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

    def running_runs(self, job: str) -> list[RunRecord]:
        _, rows = self.run(
            f"SELECT * FROM {self.table('_pipeline_runs')} WHERE job = ? AND status = 'running'",
            [job],
        )
        return [RunRecord.from_row(dict(row.items())) for row in rows]

    def events_loaded_since(self, since: datetime) -> int:
        """Reads the ``_loaded_at`` column of every partition (8 bytes an event): it is
        for ``stream status``, run by hand, not for a schedule."""
        rows = self.query(
            f"SELECT count(*) FROM {self.table('carts_events')} WHERE _loaded_at > ?", [since]
        )
        return int(rows[0][0])

    def record_run(self, run: RunRecord) -> None:
        row = run.row()
        target = self.table("_pipeline_runs")
        self.run(
            f"""BEGIN TRANSACTION;
            DELETE FROM {target} WHERE run_id = {_string(run.run_id)}
                AND entity = {_string(run.entity)};
            INSERT INTO {target} ({", ".join(row)})
            VALUES ({", ".join(_literal(v) for v in row.values())});
            COMMIT TRANSACTION;"""
        )

    def event_sink(self) -> BigQueryEventSink:
        return BigQueryEventSink(self)

    def stage_table(self, name: str) -> str:
        """Create an empty staging table of one STRING column ``line``, expiring in a day."""
        from google.cloud import bigquery

        table = bigquery.Table(f"{self.project}.{self.raw}.{name}", schema=_schema(_LINE_SCHEMA))
        table.expires = datetime.now(UTC) + _STAGE_TTL
        with api_errors(WarehouseError, f"create staging table {self.raw}.{name}"):
            self.client.create_table(table)
        return name

    def drop(self, name: str) -> None:
        with api_errors(WarehouseError, f"drop staging table {self.raw}.{name}"):
            self.client.delete_table(f"{self.project}.{self.raw}.{name}", not_found_ok=True)


class BigQueryPartitionLoad:
    """Load jobs into staging tables as parts land; one transaction at the commit."""

    def __init__(self, warehouse: BigQueryWarehouse, meta: LoadMeta) -> None:
        self.wh = warehouse
        self.meta = meta
        self.expected = 0
        self.prefix = f"_stage_{meta.entity}_{re.sub(r'[^A-Za-z0-9_]', '_', meta.run_id)}"
        self.prefix += f"_{uuid.uuid4().hex[:8]}"
        self.parts: list[tuple[str, LakeObject, Any]] = []
        self.rejects: tuple[str, LakeObject, Any] | None = None

    def _load(self, obj: LakeObject, suffix: str) -> tuple[str, LakeObject, Any]:
        from google.cloud import bigquery

        if not obj.uri.startswith("gs://"):
            raise WarehouseError(f"BigQuery loads from gs:// only, not {obj.uri}")
        stage = self.wh.stage_table(f"{self.prefix}_{suffix}")
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.CSV,
            field_delimiter="\x01",
            quote_character="",
            skip_leading_rows=0,
            allow_jagged_rows=False,
            max_bad_records=0,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            schema=_schema(_LINE_SCHEMA),
        )
        with api_errors(WarehouseError, f"load of {obj.uri} into {stage}"):
            job = self.wh.client.load_table_from_uri(
                obj.uri, f"{self.wh.project}.{self.wh.raw}.{stage}", job_config=config
            )
        return stage, obj, job

    def add(self, part: LakeObject) -> None:
        self.expected += part.records
        self.parts.append(self._load(part, f"p{len(self.parts):05d}"))

    def add_rejects(self, rejects: LakeObject) -> None:
        if rejects.records:
            self.rejects = self._load(rejects, "rejects")

    def commit(self) -> int:
        try:
            self._wait()
            staged = " UNION ALL ".join(
                f"SELECT line, {_string(obj.uri)} AS source FROM {self.wh.table(stage)}"
                for stage, obj, _ in self.parts
            )
            try:
                self.wh.run(self._script(staged))
            except WarehouseError as exc:
                if _MISMATCH in str(exc):
                    raise ReconciliationError(
                        f"{self.meta.entity} {self.meta.day}: landed {self.expected} records, "
                        f"the load jobs staged a different count; nothing changed"
                    ) from None
                raise
            return self.expected
        finally:
            self.abort()

    def _staged(self) -> list[tuple[str, LakeObject, Any]]:
        return [*self.parts, *([self.rejects] if self.rejects else [])]

    def _wait(self) -> None:
        for stage, obj, job in self._staged():
            with api_errors(WarehouseError, f"load of {obj.uri} into {stage}"):
                job.result()

    def _script(self, staged: str) -> str:
        """One transaction: check the staged count, replace the day's rows and its
        quarantine. ``staged`` is the union of the staging tables ('' if no part)."""
        m, wh = self.meta, self.wh
        day, target, quarantine = _literal(m.day), wh.table(m.entity), wh.table("_quarantine")
        mismatch = _string(f"{_MISMATCH}: {m.entity} {m.day}, {self.expected} landed")
        statements = ["BEGIN TRANSACTION"]
        if staged:
            statements.append(
                f"SELECT IF((SELECT count(*) FROM ({staged})) = {self.expected}, 0, "
                f"ERROR({mismatch}))"
            )
        statements.append(f"DELETE FROM {target} WHERE _ingestion_date = {day}")
        if staged:
            statements.append(
                f"""INSERT INTO {target} (_raw, id, _ingestion_date, _extracted_at, _loaded_at,
                                          _source_file, _run_id, _record_hash)
                SELECT PARSE_JSON(line), SAFE_CAST(JSON_VALUE(line, '$.id') AS INT64), {day},
                       {_literal(m.extracted_at)}, CURRENT_TIMESTAMP(), source,
                       {_string(m.run_id)}, TO_HEX(MD5(line))
                FROM ({staged})"""
            )
        statements.append(
            f"DELETE FROM {quarantine} WHERE entity = {_string(m.entity)} "
            f"AND _ingestion_date = {day}"
        )
        if self.rejects is not None:
            stage, obj, _ = self.rejects
            statements.append(
                f"""INSERT INTO {quarantine}
                SELECT {_string(m.entity)}, {day}, {_string(m.run_id)},
                       JSON_VALUE(line, '$.reason'), JSON_QUERY(PARSE_JSON(line), '$.record'),
                       {_string(obj.uri)}, CURRENT_TIMESTAMP()
                FROM {wh.table(stage)}"""
            )
        statements.append("COMMIT TRANSACTION")
        return ";\n".join(statements) + ";"

    def abort(self) -> None:
        for stage, _, job in self._staged():
            if not job.done():
                job.cancel()
            self.wh.drop(stage)
        self.parts.clear()
        self.rejects = None


_EVENT_SELECT = """
SELECT JSON_VALUE(e, '$.event_id') AS event_id,
       JSON_VALUE(e, '$.event_type') AS event_type,
       CAST(JSON_VALUE(e, '$.schema_version') AS INT64) AS schema_version,
       CAST(JSON_VALUE(e, '$.cart_id') AS INT64) AS cart_id,
       CAST(JSON_VALUE(e, '$.cart_version') AS INT64) AS cart_version,
       JSON_VALUE(e, '$.content_hash') AS content_hash,
       IF(JSON_VALUE(e, '$.event_type') = 'cart_deleted', NULL, JSON_QUERY(e, '$.cart')) AS cart,
       TIMESTAMP(JSON_VALUE(e, '$.extracted_at')) AS extracted_at,
       TIMESTAMP(JSON_VALUE(e, '$.published_at')) AS published_at,
       message_id, publish_time
FROM (SELECT PARSE_JSON(r.data) AS e, r.message_id, r.publish_time FROM UNNEST(@rows) AS r)
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY message_id) = 1
"""


class BigQueryEventSink:
    """One ``MERGE`` per batch, keyed on ``event_id``: see the module."""

    def __init__(self, warehouse: BigQueryWarehouse) -> None:
        self.wh = warehouse

    def write(self, rows: EventRows) -> int:
        from google.cloud import bigquery

        batch = bigquery.ArrayQueryParameter(
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
        sql = f"""MERGE {self.wh.table("carts_events")} AS t
        USING ({_EVENT_SELECT}) AS s
        ON t.event_id = s.event_id
        WHEN NOT MATCHED THEN INSERT (event_id, event_type, schema_version, cart_id,
            cart_version, content_hash, cart, extracted_at, published_at, _bus_message_id,
            _bus_publish_time, _loaded_at, _event_date)
        VALUES (s.event_id, s.event_type, s.schema_version, s.cart_id, s.cart_version,
            s.content_hash, s.cart, s.extracted_at, s.published_at, s.message_id,
            s.publish_time, CURRENT_TIMESTAMP(), DATE(s.published_at))"""
        job, _ = self.wh.run(sql, named=[batch])
        return int(job.num_dml_affected_rows or 0)

    def release(self) -> None:
        """Nothing is held between batches."""
