"""The warehouse in one DuckDB file, schemas named after the BigQuery datasets.

DuckDB lets one process write a file at a time. Connections are therefore short (one
per operation) and opening one retries with backoff while another process holds the
file, up to ``lock_timeout`` seconds, so a long-running consumer and a batch load can
take turns.

A load is one transaction that replaces an ingestion date: see
:class:`~ey_platform.warehouse.duckdb.load.DuckDBPartitionLoad`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from ey_platform.errors import WarehouseError
from ey_platform.warehouse.base import LoadMeta, QualityResult, RunRecord
from ey_platform.warehouse.duckdb import publish as publication
from ey_platform.warehouse.duckdb.connection import (
    error,
    is_lock_conflict,
    open_file,
    summary,
    transaction,
)
from ey_platform.warehouse.duckdb.ddl import set_up
from ey_platform.warehouse.duckdb.load import DuckDBPartitionLoad
from ey_platform.warehouse.duckdb.sink import DuckDBEventSink
from ey_platform.warehouse.reads import SQLReads


class DuckDBWarehouse(SQLReads):
    """The local warehouse: one DuckDB file."""

    def __init__(
        self,
        path: Path,
        raw: str = "bq_raw",
        analytics: str = "bq_analytics",
        lock_timeout: float = 60.0,
        *,
        build: str | None = None,
        serving: Path | None = None,
        read_only: bool = False,
    ) -> None:
        self.path = path
        self.raw = raw
        self.analytics = analytics
        self.build = build or f"{analytics}_build"
        self.serving = serving or path.with_name("serving") / "analytics.duckdb"
        """The read-only copy of the published marts, rewritten by every publication."""
        self.lock_timeout = lock_timeout
        self.read_only = read_only
        """Only reads: no file or folder is created, every connection is read-only."""

    def table(self, name: str) -> str:
        return f"{self.raw}.{name}"

    def analytics_table(self, name: str) -> str:
        return f"{self.analytics}.{name}"

    def build_table(self, name: str) -> str:
        return f"{self.build}.{name}"

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection (read-only for a read-only warehouse), waiting with
        backoff while another process holds the file. DuckDB's errors in the block
        become :class:`WarehouseError`."""
        read_only = self.read_only
        if read_only and not self.path.exists():
            raise WarehouseError(f"no warehouse at {self.path} yet")
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WarehouseError(
                    f"cannot create {self.path.parent}: {exc.strerror or exc}"
                ) from None
        con = self._open(read_only=read_only)
        try:
            con.execute("SET enable_progress_bar = false")
            yield con
        except duckdb.Error as exc:
            raise error(self.path, exc, "an operation on DuckDB file") from exc
        finally:
            con.close()

    def _open(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                return open_file(self.path, read_only=read_only)
            except duckdb.Error as exc:
                if not is_lock_conflict(exc):
                    raise error(self.path, exc, "opening DuckDB file") from None
                if time.monotonic() + delay > deadline:
                    raise WarehouseError(
                        f"DuckDB file {self.path} is busy for more than "
                        f"{self.lock_timeout:g}s: {summary(exc)}"
                    ) from None
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 2.0)

    def setup(self) -> None:
        with self.connect() as con:
            set_up(con, self.raw, self.analytics, self.build)

    def begin_load(self, meta: LoadMeta) -> DuckDBPartitionLoad:
        return DuckDBPartitionLoad(self, meta)

    def event_sink(self, hold_seconds: float = 10.0) -> DuckDBEventSink:
        return DuckDBEventSink(self, hold_seconds)

    def running_runs(self, job: str) -> list[RunRecord]:
        with self.connect() as con:
            cursor = con.execute(
                f"SELECT * FROM {self.raw}._pipeline_runs WHERE job = ? AND status = 'running'",
                [job],
            )
            names = [d[0] for d in cursor.description or ()]
            return [RunRecord.from_row(dict(zip(names, r, strict=True))) for r in cursor.fetchall()]

    def record_quality(self, results: Sequence[QualityResult]) -> None:
        if not results:
            return
        rows = [result.row() for result in results]
        names = list(rows[0])
        with self.connect() as con, transaction(con):
            con.executemany(
                f"INSERT INTO {self.raw}._quality_results ({', '.join(names)}) "
                f"VALUES ({', '.join('?' * len(names))})",
                [list(row.values()) for row in rows],
            )

    def _replace(self, table: str, key: dict[str, Any], row: dict[str, Any]) -> None:
        """Delete the rows of ``table`` that match ``key`` and insert ``row``, at once."""
        where = " AND ".join(f"{name} = ?" for name in key)
        with self.connect() as con, transaction(con):
            con.execute(f"DELETE FROM {self.raw}.{table} WHERE {where}", list(key.values()))
            con.execute(
                f"INSERT INTO {self.raw}.{table} ({', '.join(row)}) "
                f"VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connect() as con:  # errors are WarehouseError, as BigQuery's are
            return con.execute(sql, params or []).fetchall()

    def carry_into_build(self, tables: Sequence[str]) -> list[str]:
        return publication.carry_into_build(self, tables)

    def publish(self, marts: Sequence[str]) -> None:
        publication.publish(self, marts)

    def read_marts(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        return publication.read_marts(self, sql)
