"""The warehouse on BigQuery: datasets ``bq_raw`` and ``bq_analytics``.

The raw layer is set up by :mod:`.ddl`, batch days are loaded by :mod:`.load`, the
stream lands through :mod:`.sink`; the named reads are :mod:`ey_platform.warehouse.reads`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ey_platform.errors import WarehouseError
from ey_platform.gcp import api_errors, with_job_label
from ey_platform.warehouse.base import LoadMeta, QualityResult, RunRecord
from ey_platform.warehouse.bigquery.ddl import line_schema, set_up
from ey_platform.warehouse.bigquery.literals import query_parameter, sql_literal
from ey_platform.warehouse.bigquery.load import BigQueryPartitionLoad
from ey_platform.warehouse.bigquery.sink import BigQueryEventSink
from ey_platform.warehouse.reads import SQLReads

if TYPE_CHECKING:
    from google.cloud import bigquery
    from google.cloud.bigquery.table import RowIterator

_STAGE_TTL = timedelta(days=1)


class BigQueryWarehouse(SQLReads):
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
        """A raw table, view or staging table, fully qualified for SQL."""
        return f"`{self.project}.{self.raw}.{name}`"

    def analytics_table(self, name: str) -> str:
        return f"`{self.project}.{self.analytics}.{name}`"

    def setup(self) -> None:
        set_up(self)

    def run(
        self, sql: str, params: Sequence[Any] = (), *, named: Sequence[Any] = ()
    ) -> tuple[bigquery.QueryJob, RowIterator]:
        """Run a statement or script to its end, with positional ``params`` (Python
        values) and ``named`` query parameters; errors become :class:`WarehouseError`.
        The job has the client's labels and byte limit, and the current job's label."""
        from google.cloud import bigquery

        parameters = [*(query_parameter(p) for p in params), *named]
        config = with_job_label(self.client, bigquery.QueryJobConfig(query_parameters=parameters))
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

    def running_runs(self, job: str) -> list[RunRecord]:
        _, rows = self.run(
            f"SELECT * FROM {self.table('_pipeline_runs')} WHERE job = ? AND status = 'running'",
            [job],
        )
        return [RunRecord.from_row(dict(row.items())) for row in rows]

    def record_quality(self, results: Sequence[QualityResult]) -> None:
        if not results:
            return
        rows = [result.row() for result in results]
        values = ",\n".join(f"({', '.join(sql_literal(v) for v in row.values())})" for row in rows)
        self.run(
            f"INSERT INTO {self.table('_quality_results')} ({', '.join(rows[0])}) VALUES {values}"
        )

    def _replace(self, table: str, key: dict[str, Any], row: dict[str, Any]) -> None:
        """Delete the rows of ``table`` that match ``key`` and insert ``row``, in one
        transaction."""
        target = self.table(table)
        where = " AND ".join(f"{name} = {sql_literal(value)}" for name, value in key.items())
        self.run(
            f"""BEGIN TRANSACTION;
            DELETE FROM {target} WHERE {where};
            INSERT INTO {target} ({", ".join(row)})
            VALUES ({", ".join(sql_literal(v) for v in row.values())});
            COMMIT TRANSACTION;"""
        )

    def event_sink(self) -> BigQueryEventSink:
        return BigQueryEventSink(self)

    def stage_table(self, name: str) -> str:
        """Create an empty staging table of one STRING column ``line``, expiring in a day."""
        from google.cloud import bigquery

        table = bigquery.Table(f"{self.project}.{self.raw}.{name}", schema=line_schema())
        table.expires = datetime.now(UTC) + _STAGE_TTL
        with api_errors(WarehouseError, f"create staging table {self.raw}.{name}"):
            self.client.create_table(table)
        return name

    def drop(self, name: str) -> None:
        with api_errors(WarehouseError, f"drop staging table {self.raw}.{name}"):
            self.client.delete_table(f"{self.project}.{self.raw}.{name}", not_found_ok=True)
