"""What ``ey-platform query`` accepts: one statement that only reads.

The warehouse enforces it where it can (the serving file is opened read-only); this
check gives the same one-line answer on both warehouses before anything is sent, and is
the only guard on BigQuery, where the platform's identity may write.
"""

from __future__ import annotations

import sqlparse
from sqlparse.exceptions import SQLParseError

from ey_platform.errors import ConfigError

# sqlparse's type of a statement that reads only (a WITH ... SELECT is SELECT too).
_READS = frozenset({"SELECT"})


def read_only_select(sql: str) -> str:
    """``sql`` without a trailing semicolon if it is one SELECT; else ConfigError.

    A statement too long for sqlparse (over its 10,000 tokens: a long ``IN`` list) is
    passed on as it is, to the warehouse's own guard: the read-only serving file, or
    BigQuery's dry run, which must say SELECT."""
    try:
        parsed = sqlparse.parse(sql)
    except SQLParseError:
        return sql.strip().rstrip(";").strip()
    statements = [s for s in parsed if s.token_first(skip_cm=True) is not None]  # type: ignore[no-untyped-call]
    if len(statements) != 1:
        raise ConfigError(f"query: expected one SQL statement, got {len(statements)}")
    (statement,) = statements
    kind = statement.get_type()  # type: ignore[no-untyped-call]
    if kind not in _READS:
        raise ConfigError(f"query: only a SELECT reads the marts, got a statement of type {kind}")
    return str(statement).strip().rstrip(";").strip()
