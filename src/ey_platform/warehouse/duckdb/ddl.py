"""The raw layer on DuckDB, derived from ``raw_schema.json``: schemas named after the
BigQuery datasets, the tables, their missing columns, the views."""

from __future__ import annotations

import duckdb

from ey_platform.warehouse.raw_schema import Column, Table, raw_schema

TYPES = {
    "STRING": "VARCHAR",
    "INT64": "BIGINT",
    "JSON": "JSON",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMPTZ",
}
"""The DuckDB type of each BigQuery type of the schema file."""

# Virtual columns, computed when read: always true to _raw, and no cost at load.
COMPUTED = {
    "id": "CAST(json_extract_string(_raw, '$.id') AS BIGINT)",
    "_record_hash": "md5(_raw)",
}


def _column(column: Column) -> str:
    text = f"{column.name} {TYPES[column.type]}"
    if column.computed:
        return f"{text} GENERATED ALWAYS AS ({COMPUTED[column.name]})"
    if not column.nullable:
        text += " NOT NULL"
    if column.compression:
        text += f" USING COMPRESSION {column.compression}"
    return text


def create_table(raw: str, table: Table) -> str:
    parts = [_column(c) for c in table.columns]
    if table.key:
        parts.append(f"PRIMARY KEY ({', '.join(table.key)})")
    body = ",\n    ".join(parts)
    return f"CREATE TABLE IF NOT EXISTS {raw}.{table.name} (\n    {body})"


def _add_missing_columns(con: duckdb.DuckDBPyConnection, raw: str) -> None:
    """Add the nullable columns that a table created by an older version lacks."""
    have = set(
        con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ?",
            [raw],
        ).fetchall()
    )
    for table in raw_schema().tables.values():
        for column in table.stored:
            if column.nullable and (table.name, column.name) not in have:
                con.execute(
                    f"ALTER TABLE {raw}.{table.name} ADD COLUMN {column.name} {TYPES[column.type]}"
                )


def set_up(con: duckdb.DuckDBPyConnection, raw: str, *marts: str) -> None:
    """Create what does not exist yet, and (re)define the views. ``marts``: the
    schemas of the transform (the published marts, the build)."""
    for schema_name in (raw, *marts):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema_name}")
    schema = raw_schema()
    for table in schema.tables.values():
        con.execute(create_table(raw, table))
    _add_missing_columns(con, raw)
    for view in schema.views.values():
        sql = view.sql(lambda name: f"{raw}.{name}")
        con.execute(f"CREATE OR REPLACE VIEW {raw}.{view.name} AS\n{sql}")
