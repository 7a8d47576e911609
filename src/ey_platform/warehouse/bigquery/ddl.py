"""The raw layer on BigQuery, derived from ``raw_schema.json``: the datasets (raw,
analytics and the build dataset dbt builds in before a publication), the tables
(schema, partition column, clustering), their missing columns and the views. Terraform
creates the same tables and views from the same file (``infra/terraform/bigquery.tf``).

``products`` and ``users`` are partitioned by ``_ingestion_date`` and clustered by
``id``; ``carts_events`` by ``_event_date`` and clustered by ``cart_id, event_id``;
``_quarantine`` by ``_ingestion_date``. ``id`` and ``_record_hash`` (virtual columns in
DuckDB) are computed at load.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ey_platform.errors import WarehouseError
from ey_platform.gcp import api_errors
from ey_platform.warehouse.raw_schema import Column, Table, View, raw_schema

if TYPE_CHECKING:
    from google.cloud import bigquery

    from ey_platform.warehouse.bigquery.warehouse import BigQueryWarehouse


def schema_fields(columns: Iterable[Column]) -> list[bigquery.SchemaField]:
    """The BigQuery schema of ``columns``."""
    from google.cloud import bigquery

    return [bigquery.SchemaField(c.name, c.type, mode=c.mode) for c in columns]


def line_schema() -> list[bigquery.SchemaField]:
    """A staging table's schema: one STRING column ``line``."""
    return schema_fields([Column("line", "STRING", "NULLABLE")])


def set_up(wh: BigQueryWarehouse) -> None:
    """Create the datasets, tables and views that do not exist, add missing columns and
    bring the views' queries up to date."""
    with api_errors(WarehouseError, f"BigQuery setup of {wh.raw}, {wh.analytics}, {wh.build}"):
        for name in (wh.raw, wh.analytics, wh.build):
            _create_dataset(wh, name)
        schema = raw_schema()
        for table in schema.tables.values():
            _create_table(wh, table)
        for view in schema.views.values():
            _create_view(wh, view)


def _create_dataset(wh: BigQueryWarehouse, name: str) -> None:
    """Create the dataset if it does not exist. A dataset this identity may not read is
    left alone: on Google Cloud the owner creates every dataset (Terraform's bootstrap),
    and each workload is granted only the datasets it uses (the batch none of the
    analytics ones)."""
    from google.api_core.exceptions import Forbidden, NotFound
    from google.cloud import bigquery

    try:
        wh.client.get_dataset(name)
    except Forbidden:
        return
    except NotFound:
        dataset = bigquery.Dataset(f"{wh.project}.{name}")
        dataset.location = wh.client.location
        wh.client.create_dataset(dataset, exists_ok=True)


def _create_table(wh: BigQueryWarehouse, spec: Table) -> None:
    from google.api_core.exceptions import Conflict
    from google.cloud import bigquery

    table = bigquery.Table(f"{wh.project}.{wh.raw}.{spec.name}", schema=schema_fields(spec.columns))
    if spec.partition:
        table.time_partitioning = bigquery.TimePartitioning(field=spec.partition)
    table.clustering_fields = list(spec.cluster)
    with contextlib.suppress(Conflict):  # created meanwhile by another process
        _add_new_columns(wh, wh.client.create_table(table, exists_ok=True), table)


def _add_new_columns(
    wh: BigQueryWarehouse, existing: bigquery.Table, wanted: bigquery.Table
) -> None:
    """Add the nullable columns a table created by an older version lacks (DDL, not a
    schema patch: the BigQuery emulator applies only the former to its data)."""
    have = {f.name for f in existing.schema}
    for field in wanted.schema:
        if field.name not in have and field.mode == "NULLABLE":
            wh.run(
                f"ALTER TABLE {wh.table(existing.table_id)} "
                f"ADD COLUMN IF NOT EXISTS {field.name} {field.field_type}"
            )


def _create_view(wh: BigQueryWarehouse, view: View) -> None:
    from google.api_core.exceptions import Conflict
    from google.cloud import bigquery

    wanted = bigquery.Table(f"{wh.project}.{wh.raw}.{view.name}")
    wanted.view_query = view.sql(wh.table)
    with contextlib.suppress(Conflict):  # created meanwhile by another process
        existing = wh.client.create_table(wanted, exists_ok=True)
        if existing.view_query != wanted.view_query:
            existing.view_query = wanted.view_query
            wh.client.update_table(existing, ["view_query"])
