"""``ey-platform query``: read-only SQL on the published marts, as a table, CSV or JSON."""

from __future__ import annotations

import base64
import csv
import sys
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import orjson
import typer
from rich.text import Text

from ey_platform.cli.output import console, table
from ey_platform.cli.root import DataDir, app, settings
from ey_platform.errors import ConfigError


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command("query")
def query_cmd(
    sql: Annotated[str, typer.Argument(help="One SELECT; unqualified names are the marts.")],
    output: Annotated[Format, typer.Option("--format", help="How to print the rows.")] = (
        Format.table
    ),
    data_dir: DataDir = None,
) -> None:
    """Run one read-only SELECT on the published marts (dim_products, dim_users,
    fact_orders, fact_order_totals) and print its rows.

    Locally it reads the serving file (<data_dir>/serving/analytics.duckdb), opened
    read-only: it never waits for, nor blocks, the batch, the stream or the transform.
    On --profile gcp it runs on BigQuery, the analytics dataset as the default.
    """
    from ey_platform.backends import make_warehouse

    columns, rows = make_warehouse(settings(data_dir=data_dir), read_only=True).read_marts(sql)
    {Format.table: _table, Format.csv: _csv, Format.json: _json}[output](columns, rows)


def _table(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    shown = table(*columns, title=f"{len(rows)} row" + ("" if len(rows) == 1 else "s"))
    for row in rows:
        shown.add_row(*(Text("" if value is None else str(value)) for value in row))
    console.print(shown)


def _csv(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_text(value) for value in row] for row in rows])


def _text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _json(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """One JSON array of objects. A decimal is a number where a double holds it exactly
    as printed (money, counts), else a string, so no digit is lost on the way; bytes are
    base64, any other value its text (an interval, a UUID)."""
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise ConfigError(
            f"query: --format json needs distinct column names; {', '.join(twice)} "
            "comes more than once: give each an alias"
        )
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    sys.stdout.write(orjson.dumps(records, default=_number, option=orjson.OPT_INDENT_2).decode())
    sys.stdout.write("\n")


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)
