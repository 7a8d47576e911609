"""Publishing the marts on BigQuery: the build dataset's tested marts replace the
published ones of ``analytics`` in one multi-statement transaction.

A publication first checks that the build has every mart (else nothing changes), then,
through the API (DDL is not allowed in a transaction), creates in ``analytics`` each
mart it lacks, and re-creates one whose layout (columns, partitioning, clustering)
differs from the build's: a contract change. Then one script, ``BEGIN TRANSACTION``,
for each mart ``DELETE ... WHERE TRUE`` and ``INSERT ... SELECT`` from the build,
``COMMIT TRANSACTION``. DML transactions are atomic across tables: a reader sees every
mart as it was before, or every mart as the build made it. A statement that fails rolls
the whole transaction back (BigQuery does so when a script ends inside one).

What a reader may see besides: a new mart exists, empty, from its creation to the commit;
a re-created mart is missing for an instant, then empty until the commit. If the
transaction fails, the marts it created are dropped again, but a re-created one stays
empty until a publication succeeds (its old rows do not fit its new contract).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from ey_platform.errors import WarehouseError
from ey_platform.gcp import api_errors, with_job_label

if TYPE_CHECKING:
    from google.cloud import bigquery

    from ey_platform.warehouse.bigquery.warehouse import BigQueryWarehouse

log = logging.getLogger(__name__)

Prepared = Literal["kept", "created", "re-created"]
"""What a publication did to a published mart before its transaction."""

# A table or column name the platform writes into SQL unquoted by the user: dbt's names.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,1023}")


def _checked(names: Sequence[str], what: str) -> list[str]:
    bad = [name for name in names if not _NAME.fullmatch(name)]
    if bad:
        raise WarehouseError(f"publish: {what} {bad[0]!r} is not a plain BigQuery name")
    return list(names)


def _get(wh: BigQueryWarehouse, dataset: str, name: str) -> bigquery.Table | None:
    """The table (or view) ``dataset.name``, None if there is none."""
    from google.api_core.exceptions import NotFound

    with api_errors(WarehouseError, f"BigQuery: reading table {dataset}.{name}"):
        try:
            return wh.client.get_table(f"{wh.project}.{dataset}.{name}")
        except NotFound:
            return None


def carry_into_build(wh: BigQueryWarehouse, tables: Sequence[str]) -> list[str]:
    """Copy jobs (free, and they keep schema, partitioning and clustering), each with the
    labels a query job of the current job carries."""
    from google.cloud import bigquery

    carried = []
    for table in _checked(tables, "table"):
        if _get(wh, wh.build, table) is not None or _get(wh, wh.analytics, table) is None:
            continue
        labels = with_job_label(wh.client, bigquery.QueryJobConfig()).labels
        config = bigquery.CopyJobConfig(write_disposition="WRITE_EMPTY", labels=labels)
        with api_errors(WarehouseError, f"BigQuery: copy of {wh.analytics}.{table} to {wh.build}"):
            wh.client.copy_table(
                f"{wh.project}.{wh.analytics}.{table}",
                f"{wh.project}.{wh.build}.{table}",
                job_config=config,
            ).result()
        carried.append(table)
    return carried


def publish(wh: BigQueryWarehouse, marts: Sequence[str]) -> None:
    """The build's ``marts`` become the published ones, all in one transaction."""
    marts = _checked(marts, "mart")
    if not marts:
        return
    built = {mart: _get(wh, wh.build, mart) for mart in marts}
    missing = [mart for mart, table in built.items() if table is None]
    if missing:
        raise WarehouseError(
            f"cannot publish: the build dataset {wh.build} has no {', '.join(missing)}"
        )
    sources = {mart: table for mart, table in built.items() if table is not None}
    prepared = {mart: _prepare(wh, mart, source) for mart, source in sources.items()}
    try:
        wh.run(_script(wh, sources))
    except WarehouseError as exc:
        _drop_new(wh, [mart for mart, done in prepared.items() if done == "created"])
        emptied = [mart for mart, done in prepared.items() if done == "re-created"]
        left = f" ({', '.join(emptied)} re-created for a new contract, empty)" if emptied else ""
        raise WarehouseError(
            f"publish of {', '.join(marts)} into {wh.analytics} rolled back{left}: {exc}"
        ) from None


def _drop_new(wh: BigQueryWarehouse, marts: Sequence[str]) -> None:
    """Drop the marts this publication created, still empty: ``analytics`` as it was."""
    for mart in marts:
        with api_errors(WarehouseError, f"BigQuery: dropping table {wh.analytics}.{mart}"):
            wh.client.delete_table(f"{wh.project}.{wh.analytics}.{mart}", not_found_ok=True)


def _layout(table: bigquery.Table) -> tuple[Any, ...]:
    """What a mart's readers and its INSERT depend on: columns (names, types, modes,
    nested fields, in order), partitioning and clustering. Descriptions are left out: a
    changed description is no reason to empty a mart."""
    time = table.time_partitioning
    span = table.range_partitioning
    return (
        _columns(table.schema),
        (time.type_, time.field, time.expiration_ms) if time else None,
        (span.field, span.range_.start, span.range_.end, span.range_.interval) if span else None,
        tuple(table.clustering_fields or ()),
    )


def _columns(fields: Sequence[bigquery.SchemaField]) -> tuple[Any, ...]:
    return tuple(
        (f.name, f.field_type, f.mode, f.precision, f.scale, f.max_length, _columns(f.fields))
        for f in fields
    )


def _prepare(wh: BigQueryWarehouse, mart: str, source: bigquery.Table) -> Prepared:
    """Make ``analytics.mart`` a table with the layout of the build's, creating or
    re-creating it (empty) where it is missing or differs."""
    from google.api_core.exceptions import Conflict
    from google.cloud import bigquery

    existing = _get(wh, wh.analytics, mart)
    if existing is not None and _layout(existing) == _layout(source):
        return "kept"
    target = bigquery.Table(f"{wh.project}.{wh.analytics}.{mart}", schema=source.schema)
    target.time_partitioning = source.time_partitioning
    target.range_partitioning = source.range_partitioning
    target.clustering_fields = source.clustering_fields
    with api_errors(WarehouseError, f"BigQuery: creating table {wh.analytics}.{mart}"):
        if existing is not None:
            log.warning("publish.recreate", extra={"table": f"{wh.analytics}.{mart}"})
            wh.client.delete_table(target.reference, not_found_ok=True)
        # Created meanwhile by another publication, from the same build.
        with contextlib.suppress(Conflict):
            wh.client.create_table(target)
    return "created" if existing is None else "re-created"


def _script(wh: BigQueryWarehouse, sources: dict[str, bigquery.Table]) -> str:
    """The transaction that replaces every mart's rows with the build's, columns named."""
    statements = ["BEGIN TRANSACTION;"]
    for mart, source in sources.items():
        columns = ", ".join(
            f"`{name}`" for name in _checked([f.name for f in source.schema], "column")
        )
        target = wh.analytics_table(mart)
        statements += [
            f"DELETE FROM {target} WHERE TRUE;",
            f"INSERT INTO {target} ({columns})",
            f"SELECT {columns} FROM {wh.build_table(mart)};",
        ]
    statements.append("COMMIT TRANSACTION;")
    return "\n".join(statements)
