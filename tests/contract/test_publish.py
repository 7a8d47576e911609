"""Write-audit-publish, for DuckDB and BigQuery (on its emulator): the build's marts
replace the published ones all at once or not at all, a mart new to the published
dataset is created, a changed contract re-creates the mart; the read-only queries on the
published marts; the snapshot carried into the build of an older deployment.

The build tables are made by hand here, as dbt would make them, in ``warehouse.build``.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import pytest

from ey_platform.errors import ConfigError, WarehouseError
from ey_platform.warehouse.base import Warehouse

if TYPE_CHECKING:
    from ey_platform.warehouse.bigquery import BigQueryWarehouse

ROWS = "SELECT 1 AS id, 'a' AS name UNION ALL SELECT 2, 'b'"
NEW_ROWS = "SELECT 2 AS id, 'B' AS name UNION ALL SELECT 3, 'c' UNION ALL SELECT 4, 'd'"


def _build(wh: Warehouse, table: str, select: str) -> None:
    """Make ``build.table`` (as dbt does: replaced by every build) from ``select``."""
    wh.query(f"CREATE SCHEMA IF NOT EXISTS {wh.build}")
    wh.query(f"CREATE OR REPLACE TABLE {wh.build}.{table} AS {select}")


def _published(wh: Warehouse, table: str) -> list[tuple[Any, ...]]:
    return wh.query(f"SELECT id, name FROM {wh.analytics}.{table} ORDER BY id")


def test_publish_replaces_the_published_rows_exactly(warehouse: Warehouse) -> None:
    _build(warehouse, "dim_things", ROWS)
    _build(warehouse, "fact_things", "SELECT 10 AS id, 'x' AS name")
    warehouse.publish(["dim_things", "fact_things"])
    assert _published(warehouse, "dim_things") == [(1, "a"), (2, "b")]
    assert _published(warehouse, "fact_things") == [(10, "x")]
    _build(warehouse, "dim_things", NEW_ROWS)
    _build(warehouse, "fact_things", "SELECT 11 AS id, 'y' AS name")
    warehouse.publish(["dim_things", "fact_things"])
    assert _published(warehouse, "dim_things") == [(2, "B"), (3, "c"), (4, "d")]
    assert _published(warehouse, "fact_things") == [(11, "y")]
    # The build is left as it was: the next run's tests and snapshot read it.
    assert warehouse.query(f"SELECT count(*) FROM {warehouse.build}.dim_things") == [(3,)]


def test_a_mart_new_to_the_published_dataset_is_created_with_the_builds_columns(
    warehouse: Warehouse,
) -> None:
    _build(warehouse, "dim_things", ROWS)
    warehouse.publish(["dim_things"])
    _build(warehouse, "fact_new", "SELECT 7 AS id, 'n' AS name, 2.5 AS price")
    warehouse.publish(["dim_things", "fact_new"])
    columns, rows = warehouse.read_marts("SELECT * FROM fact_new")
    assert (columns, rows) == (["id", "name", "price"], [(7, "n", 2.5)])
    assert _published(warehouse, "dim_things") == [(1, "a"), (2, "b")]


def test_a_changed_contract_re_creates_the_mart_with_the_builds_columns(
    warehouse: Warehouse,
) -> None:
    _build(warehouse, "dim_things", ROWS)
    warehouse.publish(["dim_things"])
    _build(warehouse, "dim_things", "SELECT 'z' AS name, 5 AS id, TRUE AS active")
    warehouse.publish(["dim_things"])
    assert warehouse.read_marts("SELECT * FROM dim_things") == (
        ["name", "id", "active"],
        [("z", 5, True)],
    )


def test_a_mart_missing_from_the_build_fails_the_publication_and_changes_nothing(
    warehouse: Warehouse,
) -> None:
    _build(warehouse, "dim_things", ROWS)
    warehouse.publish(["dim_things"])
    _build(warehouse, "dim_things", NEW_ROWS)
    with pytest.raises(WarehouseError, match="fact_never_built") as failed:
        warehouse.publish(["dim_things", "fact_never_built"])
    assert "\n" not in str(failed.value)
    assert warehouse.build in str(failed.value)
    assert _published(warehouse, "dim_things") == [(1, "a"), (2, "b")]
    assert warehouse.read_marts("SELECT id FROM dim_things ORDER BY id")[1] == [(1,), (2,)]


def test_a_mart_whose_rows_cannot_be_read_fails_the_publication_and_changes_no_mart(
    warehouse: Warehouse,
) -> None:
    # A view that fails when read: on BigQuery the publication reaches the transaction,
    # where its INSERT fails after the first mart's DELETE and INSERT.
    _build(warehouse, "dim_things", ROWS)
    warehouse.publish(["dim_things"])
    _build(warehouse, "dim_things", NEW_ROWS)
    warehouse.query(
        f"CREATE OR REPLACE VIEW {warehouse.build}.fact_broken AS "
        f"SELECT id, IF(id > 0, ERROR('broken'), name) AS name FROM {warehouse.build}.dim_things"
    )
    with pytest.raises(WarehouseError, match="fact_broken") as failed:
        warehouse.publish(["dim_things", "fact_broken"])
    assert "\n" not in str(failed.value)
    assert _published(warehouse, "dim_things") == [(1, "a"), (2, "b")]
    with pytest.raises(WarehouseError):  # not even created, empty, for readers
        warehouse.query(f"SELECT count(*) FROM {warehouse.analytics}.fact_broken")


def test_read_marts_resolves_unqualified_names_to_the_published_marts(
    warehouse: Warehouse,
) -> None:
    _build(warehouse, "dim_things", ROWS)
    _build(warehouse, "fact_things", "SELECT 2 AS thing_id, 30 AS amount")
    warehouse.publish(["dim_things", "fact_things"])
    _build(warehouse, "dim_things", NEW_ROWS)  # built, not published: not what readers see
    columns, rows = warehouse.read_marts(
        "SELECT d.name, f.amount FROM fact_things AS f "
        "JOIN dim_things AS d ON d.id = f.thing_id ORDER BY d.name;"
    )
    assert (columns, rows) == (["name", "amount"], [("b", 30)])
    assert warehouse.read_marts("SELECT id FROM dim_things WHERE id > 5") == (["id"], [])


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM dim_things WHERE TRUE",
        "SELECT 1; DROP TABLE dim_things",
        "CREATE TABLE stolen AS SELECT * FROM dim_things",
        "",
    ],
)
def test_read_marts_refuses_anything_but_one_select(warehouse: Warehouse, sql: str) -> None:
    _build(warehouse, "dim_things", ROWS)
    warehouse.publish(["dim_things"])
    with pytest.raises(ConfigError, match=r"^query: "):
        warehouse.read_marts(sql)
    assert _published(warehouse, "dim_things") == [(1, "a"), (2, "b")]


def test_carry_into_build_copies_only_what_the_build_lacks(warehouse: Warehouse) -> None:
    # An older deployment: the snapshot's history is in the published dataset only.
    warehouse.query(
        f"CREATE TABLE {warehouse.analytics}.products_snapshot AS "
        "SELECT 1 AS id, 'old' AS name UNION ALL SELECT 1, 'new'"
    )
    warehouse.query(f"CREATE TABLE {warehouse.analytics}.dim_things AS {ROWS}")
    _build(warehouse, "dim_things", NEW_ROWS)
    carried = warehouse.carry_into_build(["products_snapshot", "dim_things", "never_anywhere"])
    assert carried == ["products_snapshot"]
    assert warehouse.query(
        f"SELECT id, name FROM {warehouse.build}.products_snapshot ORDER BY name"
    ) == [(1, "new"), (1, "old")]
    assert warehouse.query(f"SELECT count(*) FROM {warehouse.build}.dim_things") == [(3,)]
    assert warehouse.carry_into_build(["products_snapshot"]) == []  # the build has it now


# BigQuery alone: the published table's layout, which DuckDB does not have.
_ON_BIGQUERY = pytest.mark.parametrize("settings", ["gcp-emulators"], indirect=True)


def _bigquery(warehouse: Warehouse) -> BigQueryWarehouse:
    from ey_platform.warehouse.bigquery import BigQueryWarehouse

    assert isinstance(warehouse, BigQueryWarehouse)
    return warehouse


@_ON_BIGQUERY
def test_bigquery_publish_keeps_a_mart_whose_layout_is_unchanged(warehouse: Warehouse) -> None:
    wh = _bigquery(warehouse)
    _build(wh, "dim_things", ROWS)
    wh.publish(["dim_things"])
    table = f"{wh.project}.{wh.analytics}.dim_things"
    first = wh.client.get_table(table).created
    _build(wh, "dim_things", NEW_ROWS)
    wh.publish(["dim_things"])
    assert wh.client.get_table(table).created == first  # the same table: never emptied
    assert _published(wh, "dim_things") == [(2, "B"), (3, "c"), (4, "d")]


@_ON_BIGQUERY
def test_bigquery_publish_gives_the_mart_the_builds_partitioning_and_clustering(
    warehouse: Warehouse,
) -> None:
    from google.cloud import bigquery

    wh = _bigquery(warehouse)
    _build(wh, "fact_days", "SELECT 1 AS id, DATE '2026-11-25' AS day")
    wh.publish(["fact_days"])
    published = wh.client.get_table(f"{wh.project}.{wh.analytics}.fact_days")
    assert (published.time_partitioning, published.clustering_fields) == (None, None)
    # dbt's next build partitions and clusters it: the mart is re-created so.
    name = f"{wh.project}.{wh.build}.fact_days"
    built = bigquery.Table(name, schema=wh.client.get_table(name).schema)
    built.time_partitioning = bigquery.TimePartitioning(field="day")
    built.clustering_fields = ["id"]
    wh.client.delete_table(name)
    wh.client.create_table(built)
    wh.run(f"INSERT INTO `{name}` (id, day) VALUES (2, DATE '2026-11-26')")
    wh.publish(["fact_days"])
    published = wh.client.get_table(f"{wh.project}.{wh.analytics}.fact_days")
    assert published.time_partitioning is not None
    assert (published.time_partitioning.field, published.clustering_fields) == ("day", ["id"])
    assert wh.read_marts("SELECT id, day FROM fact_days") == (
        ["id", "day"],
        [(2, date(2026, 11, 26))],
    )
