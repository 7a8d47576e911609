"""Opening the DuckDB file, transactions, and DuckDB's errors in one line."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from ey_platform.errors import WarehouseError

# DuckDB's Python client races when two threads of one process open a file that no
# connection holds yet: one of them can get the database before the client's table
# functions are in its catalog, and its first Arrow scan fails ("Table Function with
# name python_arrow_scan does not exist"). Opening one thread at a time avoids it.
# ``up`` opens from three threads: the consumer, the batch and dbt.
_OPENING = threading.Lock()

# How DuckDB says that another process holds the file (and nothing else says): the one
# failure worth waiting out, here and in the transform (dbt-duckdb reports the same).
LOCK_CONFLICT = ("Could not set lock on file", "Conflicting lock is held")
_DAMAGED = ("not a valid DuckDB database", "Could not read enough bytes", "Corrupt", "checksum")
# Where DuckDB's messages start quoting the data they failed on.
_PAYLOAD = re.compile(r"\s*(Input:|Original Line:|Could not convert string).*", re.S)


def open_file(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, one thread of the process at a time (see ``_OPENING``)."""
    with _OPENING:
        return duckdb.connect(str(path), read_only=read_only)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commit what the block did, or roll all of it back."""
    con.execute("BEGIN")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def is_lock_conflict(exc: Exception) -> bool:
    return any(sign in str(exc) for sign in LOCK_CONFLICT)


def summary(exc: Exception) -> str:
    """The first line of a DuckDB error, without any data it quotes."""
    text = str(exc).strip()
    first = _PAYLOAD.sub("", text.splitlines()[0] if text else "")[:300]
    return first or type(exc).__name__


def error(path: Path, exc: Exception, doing: str) -> WarehouseError:
    """One line for a DuckDB error: a damaged file says so, and what to do."""
    if any(sign in str(exc) for sign in _DAMAGED):
        return WarehouseError(
            f"DuckDB file {path} is damaged or not a DuckDB database ({summary(exc)}): "
            "restore it from a backup, or move it away to start a new one and reload the "
            "batch days with `ey-platform batch --from-lake --date D`"
        )
    return WarehouseError(f"{doing} {path} failed: {summary(exc)}")
