"""Values in BigQuery SQL: literals of the platform's own values, and query parameters.

Statements are scripts with literal values where they must be: the values are the
platform's own (dates, counts, run ids, URIs), quoted by :func:`sql_string`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from ey_platform.errors import WarehouseError

_SAFE_TEXT = re.compile(r"[^\x00-\x1f]*")


def sql_string(value: str) -> str:
    """A BigQuery string literal of one of the platform's own values."""
    if not _SAFE_TEXT.fullmatch(value):
        raise WarehouseError(f"refusing a control character in a SQL literal: {value!r}")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_literal(value: Any) -> str:
    """A BigQuery literal of ``value`` (None, bool, int, datetime, date or text)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return f"TIMESTAMP {sql_string(value.astimezone(UTC).isoformat())}"
    if isinstance(value, date):
        return f"DATE {sql_string(value.isoformat())}"
    return sql_string(str(value))


def query_parameter(value: Any) -> Any:
    """A positional query parameter of ``value``."""
    from google.cloud import bigquery

    kinds: list[tuple[type, str]] = [(bool, "BOOL"), (int, "INT64"), (float, "FLOAT64")]
    kinds += [(datetime, "TIMESTAMP"), (date, "DATE"), (str, "STRING")]
    for python_type, kind in kinds:
        if isinstance(value, python_type):
            return bigquery.ScalarQueryParameter(None, kind, value)  # type: ignore[arg-type]
    raise WarehouseError(f"no BigQuery type for a query parameter of type {type(value).__name__}")
