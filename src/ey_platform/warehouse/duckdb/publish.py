"""Publishing the marts on DuckDB, and reading them where readers never block the platform.

dbt builds and tests in the build schema of the warehouse file. A publication then:

1. writes the build's marts to a new file beside the serving file;
2. replaces every mart of the analytics schema with the build's in one transaction (an
   in-process reader of the warehouse file sees the old marts or the new, never a mix);
3. renames the new file over the serving file. A reader holding the old serving file
   open keeps reading the old marts (the rename leaves its inode alone) and sees the new
   ones once it reconnects; a reader that opens the path sees a whole file, old or new.

The serving file is the one BI tools open. Opening the warehouse file itself would take
a lock that makes the batch wait and the transform fail: DuckDB lets one process write a
file, and no process write while another holds it open.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ey_platform.errors import WarehouseError
from ey_platform.serving.sql import read_only_select
from ey_platform.warehouse.duckdb.connection import error, open_file, transaction

if TYPE_CHECKING:
    from ey_platform.warehouse.duckdb.warehouse import DuckDBWarehouse

# Tables of a schema, as DuckDB's catalog lists them.
_TABLES = "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = ?"


def _tables(con: duckdb.DuckDBPyConnection, database: str, schema: str) -> set[str]:
    return {name for (name,) in con.execute(_TABLES, [database, schema]).fetchall()}


def _database(con: duckdb.DuckDBPyConnection) -> str:
    (name,) = con.execute("SELECT current_database()").fetchone() or ("",)
    return str(name)


def carry_into_build(wh: DuckDBWarehouse, tables: Sequence[str]) -> list[str]:
    with wh.connect() as con, transaction(con):
        database = _database(con)
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {wh.build}")
        built, published = _tables(con, database, wh.build), _tables(con, database, wh.analytics)
        carried = [t for t in tables if t in published and t not in built]
        for table in carried:
            con.execute(f"CREATE TABLE {wh.build}.{table} AS FROM {wh.analytics}.{table}")
        return carried


def publish(wh: DuckDBWarehouse, marts: Sequence[str]) -> None:
    """The build's ``marts`` become the published ones: first written to a new serving
    file, then published in the warehouse file in one transaction, then the new serving
    file renamed over the old. Until that transaction commits nothing is published; a
    failure after it leaves the serving file one publication behind."""
    with wh.connect() as con:
        missing = [m for m in marts if m not in _tables(con, _database(con), wh.build)]
        if missing:
            raise WarehouseError(
                f"cannot publish: the build schema {wh.build} has no {', '.join(missing)}"
            )
        fresh = _write_serving(con, wh.build, wh.analytics, marts, wh.serving)
        try:
            with transaction(con):
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {wh.analytics}")
                for mart in marts:
                    con.execute(
                        f"CREATE OR REPLACE TABLE {wh.analytics}.{mart} AS FROM {wh.build}.{mart}"
                    )
        except BaseException:
            fresh.unlink(missing_ok=True)
            raise
    try:
        _durable_replace(fresh, wh.serving)
    except OSError as exc:
        fresh.unlink(missing_ok=True)
        raise WarehouseError(f"cannot write {wh.serving}: {exc.strerror or exc}") from None


def _write_serving(
    con: duckdb.DuckDBPyConnection, build: str, schema: str, marts: Sequence[str], serving: Path
) -> Path:
    """The build's ``marts`` copied into a new file beside ``serving``, as ``schema``;
    the new file's path. What a crashed publication left there is removed first (the
    transform's job lock keeps two publications apart)."""
    try:
        serving.parent.mkdir(parents=True, exist_ok=True)
        for debris in serving.parent.glob(f".{serving.name}.*.new*"):
            debris.unlink(missing_ok=True)
    except OSError as exc:
        raise WarehouseError(f"cannot write {serving.parent}: {exc.strerror or exc}") from None
    fresh = serving.with_name(f".{serving.name}.{os.getpid()}.new")
    quoted = str(fresh).replace("'", "''")
    try:
        con.execute(f"ATTACH '{quoted}' AS serving_next")
        try:
            con.execute(f"CREATE SCHEMA serving_next.{schema}")
            for mart in marts:
                con.execute(f"CREATE TABLE serving_next.{schema}.{mart} AS FROM {build}.{mart}")
        finally:
            con.execute("DETACH serving_next")  # checkpointed: the file is whole, no WAL
    except duckdb.Error as exc:
        fresh.unlink(missing_ok=True)
        raise error(serving, exc, "writing the serving file") from None
    return fresh


def _durable_replace(fresh: Path, target: Path) -> None:
    """Rename ``fresh`` over ``target``, both on disk before and after the rename."""
    with fresh.open("rb") as written:
        os.fsync(written.fileno())
    # A WAL beside the serving file is a reader's that wrote to it (it should not): it
    # would not match the new file, and DuckDB would refuse to open it.
    target.with_name(f"{target.name}.wal").unlink(missing_ok=True)
    fresh.replace(target)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def read_marts(wh: DuckDBWarehouse, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """One SELECT on the serving file, opened read-only with no access to other files:
    its columns and rows."""
    sql = read_only_select(sql)
    if not wh.serving.exists():
        raise WarehouseError(f"no published marts at {wh.serving} yet: run `ey-platform transform`")
    try:
        con = open_file(wh.serving, read_only=True)
    except duckdb.Error as exc:
        raise error(wh.serving, exc, "opening the serving file") from None
    try:
        con.execute(f"USE {wh.analytics}")
        con.execute("SET enable_external_access = false")
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description or ()]
        return columns, cursor.fetchall()
    except duckdb.Error as exc:
        raise WarehouseError(f"query on {wh.serving} failed: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
