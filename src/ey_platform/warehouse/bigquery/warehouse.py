"""The warehouse on BigQuery: datasets ``bq_raw``, ``bq_analytics`` and the private
build dataset ``bq_analytics_build``.

The raw layer is set up by :mod:`.ddl`, batch days are loaded by :mod:`.load`, the
stream lands through :mod:`.sink`, the marts are published by :mod:`.publish`; the named
reads are :mod:`ey_platform.warehouse.reads`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ey_platform.errors import ConfigError, WarehouseError
from ey_platform.gcp import api_errors, with_job_label
from ey_platform.serving.sql import read_only_select
from ey_platform.warehouse.base import LoadMeta, QualityResult, RunRecord
from ey_platform.warehouse.bigquery import publish as publication
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
        build: str | None = None,
        storage_read: bool = False,
    ) -> None:
        self.client = client
        self.project = client.project
        self.raw = raw
        self.analytics = analytics
        self.build = build or f"{analytics}_build"
        self.storage_read = storage_read

    def table(self, name: str) -> str:
        """A raw table, view or staging table, fully qualified for SQL."""
        return f"`{self.project}.{self.raw}.{name}`"

    def analytics_table(self, name: str) -> str:
        return f"`{self.project}.{self.analytics}.{name}`"

    def build_table(self, name: str) -> str:
        return f"`{self.project}.{self.build}.{name}`"

    def setup(self) -> None:
        set_up(self)

    def run(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        named: Sequence[Any] = (),
        default_dataset: str | None = None,
        dry_run: bool = False,
    ) -> tuple[bigquery.QueryJob, RowIterator]:
        """Run a statement or script to its end, with positional ``params`` (Python
        values) and ``named`` query parameters, unqualified table names resolving in
        ``default_dataset`` (``project.dataset``); ``dry_run`` only validates it. Errors
        become :class:`WarehouseError`. The job has the client's labels and byte limit,
        and the current job's label."""
        from google.cloud import bigquery

        parameters = [*(query_parameter(p) for p in params), *named]
        config = bigquery.QueryJobConfig(
            query_parameters=parameters, default_dataset=default_dataset, dry_run=dry_run
        )
        config = with_job_label(self.client, config)
        with api_errors(WarehouseError, "BigQuery"):
            job = self.client.query(sql, job_config=config)
            return job, job.result()

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self._tuples(*self.run(sql, params or []))

    def _tuples(self, job: bigquery.QueryJob, rows: RowIterator) -> list[tuple[Any, ...]]:
        if self.storage_read:
            frame = job.to_arrow(create_bqstorage_client=True)
            return list(zip(*(col.to_pylist() for col in frame.columns), strict=True))
        return [tuple(row.values()) for row in rows]

    def carry_into_build(self, tables: Sequence[str]) -> list[str]:
        return publication.carry_into_build(self, tables)

    def publish(self, marts: Sequence[str]) -> None:
        publication.publish(self, marts)

    def read_marts(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Checked twice before it runs: by :func:`read_only_select`, and by a dry run
        whose statement type must be ``SELECT`` (this identity may write, and BigQuery
        has no read-only job)."""
        sql = read_only_select(sql)
        published = f"{self.project}.{self.analytics}"
        checked, _ = self.run(sql, default_dataset=published, dry_run=True)
        if checked.statement_type != "SELECT":
            raise ConfigError(
                f"query: only a SELECT reads the marts, BigQuery sees a {checked.statement_type}"
            )
        job, rows = self.run(sql, default_dataset=published)
        return [field.name for field in rows.schema], self._tuples(job, rows)

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
