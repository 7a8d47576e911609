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
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ey_platform.errors import ReconciliationError, WarehouseError
from ey_platform.lake.base import LakeObject
from ey_platform.warehouse.base import EventRows, LoadMeta, RunRecord

if TYPE_CHECKING:
    from google.cloud import bigquery

log = logging.getLogger(__name__)

RAW_ENTITIES = ("products", "users")
_STAGE_TTL = timedelta(days=1)
_MISMATCH = "reconciliation failed"


def _schema(*fields: tuple[str, str, str]) -> list[bigquery.SchemaField]:
    from google.cloud import bigquery

    return [bigquery.SchemaField(name, kind, mode=mode) for name, kind, mode in fields]


def _tables() -> dict[str, dict[str, Any]]:
    """Every raw table: schema, partition column, clustering. Terraform declares the same
    (tests/unit/test_terraform.py compares them)."""
    req, opt = "REQUIRED", "NULLABLE"
    raw_entity = {
        "schema": _schema(
            ("_raw", "JSON", req),
            ("id", "INT64", opt),
            ("_ingestion_date", "DATE", req),
            ("_extracted_at", "TIMESTAMP", req),
            ("_loaded_at", "TIMESTAMP", req),
            ("_source_file", "STRING", req),
            ("_run_id", "STRING", req),
            ("_record_hash", "STRING", req),
        ),
        "partition": "_ingestion_date",
        "cluster": ["id"],
    }
    return {
        "products": raw_entity,
        "users": raw_entity,
        "carts_events": {
            "schema": _schema(
                ("event_id", "STRING", req),
                ("event_type", "STRING", req),
                ("schema_version", "INT64", req),
                ("cart_id", "INT64", req),
                ("cart_version", "INT64", req),
                ("content_hash", "STRING", opt),
                ("cart", "JSON", opt),
                ("extracted_at", "TIMESTAMP", req),
                ("published_at", "TIMESTAMP", req),
                ("_bus_message_id", "STRING", req),
                ("_bus_publish_time", "TIMESTAMP", req),
                ("_loaded_at", "TIMESTAMP", req),
                ("_event_date", "DATE", req),
            ),
            "partition": "_event_date",
            "cluster": ["cart_id", "event_id"],
        },
        "_quarantine": {
            "schema": _schema(
                ("entity", "STRING", req),
                ("_ingestion_date", "DATE", req),
                ("_run_id", "STRING", req),
                ("reason", "STRING", req),
                ("record", "JSON", opt),
                ("_source_file", "STRING", req),
                ("_loaded_at", "TIMESTAMP", req),
            ),
            "partition": "_ingestion_date",
            "cluster": ["entity"],
        },
        "_pipeline_runs": {
            "schema": _schema(
                ("run_id", "STRING", req),
                ("job", "STRING", req),
                ("entity", "STRING", req),
                ("ingestion_date", "DATE", opt),
                ("started_at", "TIMESTAMP", req),
                ("source", "STRING", opt),
                ("status", "STRING", req),
                ("finished_at", "TIMESTAMP", opt),
                ("extracted", "INT64", opt),
                ("valid", "INT64", opt),
                ("quarantined", "INT64", opt),
                ("landed", "INT64", opt),
                ("loaded", "INT64", opt),
                ("content_sha256", "STRING", opt),
                ("error", "STRING", opt),
            ),
            "partition": None,
            "cluster": ["job", "entity"],
        },
    }


_RUN_COLUMNS = [f.name for f in _tables()["_pipeline_runs"]["schema"]]
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

    def table(self, name: str, dataset: str | None = None) -> str:
        return f"`{self.project}.{dataset or self.raw}.{name}`"

    def setup(self) -> None:
        from google.api_core.exceptions import Conflict, NotFound
        from google.cloud import bigquery

        for name in (self.raw, self.analytics):
            try:
                self.client.get_dataset(name)
            except NotFound:
                dataset = bigquery.Dataset(f"{self.project}.{name}")
                dataset.location = self.client.location
                self.client.create_dataset(dataset, exists_ok=True)
        for name, spec in _tables().items():
            table = bigquery.Table(f"{self.project}.{self.raw}.{name}", schema=spec["schema"])
            if spec["partition"]:
                table.time_partitioning = bigquery.TimePartitioning(field=spec["partition"])
            table.clustering_fields = spec["cluster"]
            with contextlib.suppress(Conflict):  # created meanwhile by another process
                self.client.create_table(table, exists_ok=True)

    def run(self, sql: str, params: Sequence[Any] = ()) -> bigquery.QueryJob:
        """Run a statement or script to its end; errors become :class:`WarehouseError`."""
        from google.api_core.exceptions import GoogleAPICallError
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=[_parameter(p) for p in params])
        try:
            job = self.client.query(sql, job_config=config)
            job.result()
        except GoogleAPICallError as exc:
            raise WarehouseError(f"BigQuery: {_message(exc)}") from None
        return job

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        job = self.run(sql, params or [])
        if self.storage_read:
            frame = job.to_arrow(create_bqstorage_client=True)
            return list(zip(*(col.to_pylist() for col in frame.columns), strict=True))
        return [tuple(row.values()) for row in job.result()]

    def begin_load(self, meta: LoadMeta) -> BigQueryPartitionLoad:
        return BigQueryPartitionLoad(self, meta)

    def partition_runs(self, entity: str, day: date) -> set[str]:
        rows = self.query(
            f"SELECT DISTINCT _run_id FROM {self.table(entity)} WHERE _ingestion_date = ?", [day]
        )
        return {r[0] for r in rows}

    def record_run(self, run: RunRecord) -> None:
        values = asdict(run)
        literals = ", ".join(
            _literal(values[c if c != "ingestion_date" else "day"]) for c in _RUN_COLUMNS
        )
        target = self.table("_pipeline_runs")
        self.run(
            f"""BEGIN TRANSACTION;
            DELETE FROM {target} WHERE run_id = {_string(run.run_id)}
                AND entity = {_string(run.entity)};
            INSERT INTO {target} ({", ".join(_RUN_COLUMNS)}) VALUES ({literals});
            COMMIT TRANSACTION;"""
        )

    def event_sink(self) -> BigQueryEventSink:
        return BigQueryEventSink(self)

    def stage_table(self, name: str) -> str:
        """Create an empty staging table of one STRING column ``line``, expiring in a day."""
        from google.cloud import bigquery

        table = bigquery.Table(
            f"{self.project}.{self.raw}.{name}", schema=_schema(("line", "STRING", "NULLABLE"))
        )
        table.expires = datetime.now(UTC) + _STAGE_TTL
        self.client.create_table(table)
        return name

    def drop(self, name: str) -> None:
        self.client.delete_table(f"{self.project}.{self.raw}.{name}", not_found_ok=True)


def _message(exc: Exception) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return str(text).splitlines()[0]


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
            schema=_schema(("line", "STRING", "NULLABLE")),
        )
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

    def _wait(self) -> None:
        from google.api_core.exceptions import GoogleAPICallError

        for stage, obj, job in [*self.parts, *([self.rejects] if self.rejects else [])]:
            try:
                job.result()
            except GoogleAPICallError as exc:
                raise WarehouseError(f"load of {obj.uri} into {stage}: {_message(exc)}") from None

    def _script(self, staged: str) -> str:
        m, wh = self.meta, self.wh
        day, target, quarantine = _literal(m.day), wh.table(m.entity), wh.table("_quarantine")
        mismatch = _string(f"{_MISMATCH}: {m.entity} {m.day}, {self.expected} landed")
        check = (
            f"SELECT IF((SELECT count(*) FROM ({staged})) = {self.expected}, 0, ERROR({mismatch}))"
            if staged
            else f"SELECT IF({self.expected} = 0, 0, ERROR({mismatch}))"
        )
        insert = (
            f"""INSERT INTO {target} (_raw, id, _ingestion_date, _extracted_at, _loaded_at,
                                      _source_file, _run_id, _record_hash)
            SELECT PARSE_JSON(line), SAFE_CAST(JSON_VALUE(line, '$.id') AS INT64), {day},
                   {_literal(m.extracted_at)}, CURRENT_TIMESTAMP(), source,
                   {_string(m.run_id)}, TO_HEX(MD5(line))
            FROM ({staged});"""
            if staged
            else ""
        )
        rejects = ""
        if self.rejects is not None:
            stage, obj, _ = self.rejects
            rejects = f"""INSERT INTO {quarantine}
            SELECT {_string(m.entity)}, {day}, {_string(m.run_id)},
                   JSON_VALUE(line, '$.reason'), JSON_QUERY(PARSE_JSON(line), '$.record'),
                   {_string(obj.uri)}, CURRENT_TIMESTAMP()
            FROM {wh.table(stage)};"""
        return f"""BEGIN TRANSACTION;
            {check};
            DELETE FROM {target} WHERE _ingestion_date = {day};
            {insert}
            DELETE FROM {quarantine}
            WHERE entity = {_string(m.entity)} AND _ingestion_date = {day};
            {rejects}
            COMMIT TRANSACTION;"""

    def abort(self) -> None:
        for stage, _, job in [*self.parts, *([self.rejects] if self.rejects else [])]:
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
        from google.api_core.exceptions import GoogleAPICallError

        try:
            job = self.wh.client.query(
                sql, job_config=bigquery.QueryJobConfig(query_parameters=[batch])
            )
            job.result()
        except GoogleAPICallError as exc:
            raise WarehouseError(f"BigQuery: {_message(exc)}") from None
        return int(job.num_dml_affected_rows or 0)

    def release(self) -> None:
        """Nothing is held between batches."""
