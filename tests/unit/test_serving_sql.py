"""What ``ey-platform query`` lets through: one statement that only reads."""

from __future__ import annotations

import pytest

from ey_platform.errors import ConfigError
from ey_platform.serving.sql import read_only_select


@pytest.mark.parametrize(
    ("sql", "sent"),
    [
        ("SELECT 1", "SELECT 1"),
        ("  select * from fact_orders ;  ", "select * from fact_orders"),
        ("-- revenue\nSELECT sum(line_amount) FROM fact_orders", None),
        ("WITH t AS (SELECT 1 AS n) SELECT n FROM t", "WITH t AS (SELECT 1 AS n) SELECT n FROM t"),
    ],
)
def test_one_select_is_sent_as_it_is(sql: str, sent: str | None) -> None:
    assert read_only_select(sql) == (sent or sql.strip())


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("", "expected one SQL statement, got 0"),
        ("-- nothing", "expected one SQL statement, got 0"),
        ("SELECT 1; SELECT 2", "expected one SQL statement, got 2"),
        ("SELECT 1; DROP TABLE fact_orders", "expected one SQL statement, got 2"),
        ("DELETE FROM fact_orders", "got a statement of type DELETE"),
        ("CREATE TABLE x AS SELECT 1", "got a statement of type CREATE"),
        ("WITH t AS (SELECT 1) DELETE FROM fact_orders", "got a statement of type DELETE"),
        ("ATTACH 'x.duckdb'", "got a statement of type UNKNOWN"),
    ],
)
def test_anything_else_is_refused_in_one_line(sql: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        read_only_select(sql)
