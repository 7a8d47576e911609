"""The warehouse in one DuckDB file, schemas named after the BigQuery datasets.

DuckDB lets one process write a file at a time. Connections are therefore short (one
per operation) and opening one retries with backoff while another process holds the
file, up to ``lock_timeout`` seconds, so a long-running consumer and a batch load can
take turns.

A load is one transaction that replaces an ingestion date: see
:class:`DuckDBPartitionLoad`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from ey_platform.errors import ReconciliationError, WarehouseError
from ey_platform.lake.base import LakeObject
from ey_platform.models import BATCH_ENTITIES
from ey_platform.warehouse.base import EventRows, LoadMeta, RunRecord

log = logging.getLogger(__name__)

# DuckDB's Python client races when two threads of one process open a file that no
# connection holds yet: one of them can get the database before the client's table
# functions are in its catalog, and its first Arrow scan fails ("Table Function with
# name python_arrow_scan does not exist"). Measured with duckdb 2.0.1: 64 of 200 pairs
# of threads opening at once failed; none with the opening serialised by this lock.
# ``up`` opens from three threads: the consumer, the batch and dbt.
_OPENING = threading.Lock()


def open_file(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, one thread of the process at a time (see ``_OPENING``)."""
    with _OPENING:
        return duckdb.connect(str(path), read_only=read_only)


def _ddl(raw: str, analytics: str) -> list[str]:
    tables = [
        f"""CREATE TABLE IF NOT EXISTS {raw}.{entity} (
            -- zstd: 25% faster to load than DuckDB's own choice, and 40% smaller
            _raw JSON NOT NULL USING COMPRESSION zstd,
            _ingestion_date DATE NOT NULL,
            _extracted_at TIMESTAMPTZ NOT NULL,
            _loaded_at TIMESTAMPTZ NOT NULL,
            _source_file VARCHAR NOT NULL,
            _run_id VARCHAR NOT NULL,
            -- computed when read, always true to _raw: at load time they cost 40% of it
            _record_hash VARCHAR GENERATED ALWAYS AS (md5(_raw)),
            id BIGINT GENERATED ALWAYS AS (CAST(json_extract_string(_raw, '$.id') AS BIGINT)))"""
        for entity in BATCH_ENTITIES
    ]
    return [
        f"CREATE SCHEMA IF NOT EXISTS {raw}",
        f"CREATE SCHEMA IF NOT EXISTS {analytics}",
        *tables,
        f"""CREATE TABLE IF NOT EXISTS {raw}.carts_events (
            event_id VARCHAR PRIMARY KEY,
            event_type VARCHAR NOT NULL,
            schema_version INTEGER NOT NULL,
            cart_id BIGINT NOT NULL,
            cart_version BIGINT NOT NULL,
            content_hash VARCHAR,
            cart JSON USING COMPRESSION zstd,
            extracted_at TIMESTAMPTZ NOT NULL,
            published_at TIMESTAMPTZ NOT NULL,
            _bus_message_id VARCHAR NOT NULL,
            _bus_publish_time TIMESTAMPTZ NOT NULL,
            _loaded_at TIMESTAMPTZ NOT NULL,
            _event_date DATE NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {raw}._quarantine (
            entity VARCHAR NOT NULL,
            _ingestion_date DATE NOT NULL,
            _run_id VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            record JSON,
            _source_file VARCHAR NOT NULL,
            _loaded_at TIMESTAMPTZ NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {raw}._pipeline_runs (
            run_id VARCHAR NOT NULL,
            job VARCHAR NOT NULL,
            entity VARCHAR NOT NULL,
            ingestion_date DATE,
            started_at TIMESTAMPTZ NOT NULL,
            source VARCHAR,
            status VARCHAR NOT NULL,
            finished_at TIMESTAMPTZ,
            extracted BIGINT,
            valid BIGINT,
            quarantined BIGINT,
            landed BIGINT,
            loaded BIGINT,
            content_sha256 VARCHAR,
            error VARCHAR,
            holder VARCHAR)""",
        # Files created before the column existed.
        f"ALTER TABLE {raw}._pipeline_runs ADD COLUMN IF NOT EXISTS holder VARCHAR",
    ]


_LOADED_COLUMNS = (
    "_raw",
    "_ingestion_date",
    "_extracted_at",
    "_loaded_at",
    "_source_file",
    "_run_id",
)
# A landed part, one JSON record per line, read as one text column. Every line is a
# record that passed validation, and JSON text holds no raw control byte, so \x01
# can never be a delimiter; this skips the JSON parse of read_json_objects (30% of
# the load) without storing anything that is not valid JSON.
_LINES = r"""read_csv(?, columns = {'j': 'VARCHAR'}, delim = '\x01', quote = '', escape = '',
             header = false, new_line = '\n', auto_detect = false) AS t"""


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commit what the block did, or roll all of it back."""
    con.execute("BEGIN")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


# How DuckDB says that another process holds the file (and nothing else says): the one
# failure worth waiting out, here and in the transform (dbt-duckdb reports the same).
LOCK_CONFLICT = ("Could not set lock on file", "Conflicting lock is held")
_DAMAGED = ("not a valid DuckDB database", "Could not read enough bytes", "Corrupt", "checksum")
# Where DuckDB's messages start quoting the data they failed on.
_PAYLOAD = re.compile(r"\s*(Input:|Original Line:|Could not convert string).*", re.S)


def _is_lock_conflict(exc: Exception) -> bool:
    return any(sign in str(exc) for sign in LOCK_CONFLICT)


def _summary(exc: Exception) -> str:
    """The first line of a DuckDB error, without any data it quotes."""
    text = str(exc).strip()
    first = _PAYLOAD.sub("", text.splitlines()[0] if text else "")[:300]
    return first or type(exc).__name__


def _error(path: Path, exc: Exception, doing: str) -> WarehouseError:
    """One line for a DuckDB error: a damaged file says so, and what to do."""
    if any(sign in str(exc) for sign in _DAMAGED):
        return WarehouseError(
            f"DuckDB file {path} is damaged or not a DuckDB database ({_summary(exc)}): "
            "restore it from a backup, or move it away to start a new one and reload the "
            "batch days with `ey-platform batch --from-lake --date D`"
        )
    return WarehouseError(f"{doing} {path} failed: {_summary(exc)}")


class DuckDBWarehouse:
    """The local warehouse: one DuckDB file."""

    def __init__(
        self,
        path: Path,
        raw: str = "bq_raw",
        analytics: str = "bq_analytics",
        lock_timeout: float = 60.0,
        *,
        read_only: bool = False,
    ) -> None:
        self.path = path
        self.raw = raw
        self.analytics = analytics
        self.lock_timeout = lock_timeout
        self.read_only = read_only
        """Only reads: no file or folder is created, every connection is read-only."""

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection, waiting with backoff while another process
        holds the file. DuckDB's errors in the block become :class:`WarehouseError`."""
        read_only = read_only or self.read_only
        if read_only and not self.path.exists():
            raise WarehouseError(f"no warehouse at {self.path} yet")
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WarehouseError(
                    f"cannot create {self.path.parent}: {exc.strerror or exc}"
                ) from None
        con = self._open(read_only)
        try:
            con.execute("SET enable_progress_bar = false")
            yield con
        except duckdb.Error as exc:
            raise _error(self.path, exc, "an operation on DuckDB file") from exc
        finally:
            con.close()

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                return open_file(self.path, read_only=read_only)
            except duckdb.Error as exc:
                if not _is_lock_conflict(exc):
                    raise _error(self.path, exc, "opening DuckDB file") from None
                if time.monotonic() + delay > deadline:
                    raise WarehouseError(
                        f"DuckDB file {self.path} is busy for more than "
                        f"{self.lock_timeout:g}s: {_summary(exc)}"
                    ) from None
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 2.0)

    def setup(self) -> None:
        with self.connect() as con:
            for statement in _ddl(self.raw, self.analytics):
                con.execute(statement)

    def begin_load(self, meta: LoadMeta) -> DuckDBPartitionLoad:
        return DuckDBPartitionLoad(self, meta)

    def event_sink(self, hold_seconds: float = 10.0) -> DuckDBEventSink:
        return DuckDBEventSink(self, hold_seconds)

    def partition_runs(self, entity: str, day: date) -> set[str]:
        rows = self.query(
            f"SELECT DISTINCT _run_id FROM {self.raw}.{entity} WHERE _ingestion_date = ?", [day]
        )
        return {r[0] for r in rows}

    def latest_day_rows(self, entity: str) -> tuple[date, int] | None:
        rows = self.query(
            f"SELECT _ingestion_date, count(*) FROM {self.raw}.{entity} WHERE _ingestion_date = "
            f"(SELECT max(_ingestion_date) FROM {self.raw}.{entity}) GROUP BY 1"
        )
        return (rows[0][0], int(rows[0][1])) if rows else None

    def running_runs(self, job: str) -> list[RunRecord]:
        with self.connect() as con:
            cursor = con.execute(
                f"SELECT * FROM {self.raw}._pipeline_runs WHERE job = ? AND status = 'running'",
                [job],
            )
            names = [d[0] for d in cursor.description or ()]
            return [RunRecord.from_row(dict(zip(names, r, strict=True))) for r in cursor.fetchall()]

    def events_loaded_since(self, since: datetime) -> int:
        rows = self.query(
            f"SELECT count(*) FROM {self.raw}.carts_events WHERE _loaded_at > ?", [since]
        )
        return int(rows[0][0])

    def record_run(self, run: RunRecord) -> None:
        row = run.row()
        marks = ", ".join("?" * len(row))
        with self.connect() as con, _transaction(con):
            con.execute(
                f"DELETE FROM {self.raw}._pipeline_runs WHERE run_id = ? AND entity = ?",
                [run.run_id, run.entity],
            )
            con.execute(
                f"INSERT INTO {self.raw}._pipeline_runs ({', '.join(row)}) VALUES ({marks})",
                list(row.values()),
            )

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connect() as con:  # errors are WarehouseError, as BigQuery's are
            return con.execute(sql, params or []).fetchall()


class _Aborted(Exception):
    pass


# Settings for a load that runs beside the extraction (see _loading); SQL literals.
_LOAD_SETTINGS = {"threads": "1", "preserve_insertion_order": "false", "memory_limit": "'256MB'"}


@contextmanager
def _loading(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Settings for a load that runs beside the extraction:

    - one thread, so that it does not fight the validating processes for the cores
      (measured 10% faster end to end), until the extraction is over: the parts still
      queued then load with every core (5 to 8% faster end to end, two A/Bs of six
      alternated runs of 1M users);
    - no ordering work on raw rows;
    - a 256 MB memory limit. Without one, DuckDB keeps the transaction's new row groups
      in memory (170 MB for 1M users) and writes them all at the commit, a 0.4 s tail
      after the extraction has ended. Under the limit it writes them into the file as
      the parts arrive, overlapping the extraction: 10% faster end to end and 200 MB
      less peak memory. Nothing spills to temporary files.

    All are database-wide in DuckDB, so they are reset afterwards."""
    for name, value in _LOAD_SETTINGS.items():
        con.execute(f"SET {name} = {value}")
    try:
        yield
    finally:
        for name in _LOAD_SETTINGS:
            con.execute(f"RESET {name}")


class DuckDBPartitionLoad:
    """One transaction, owned by a worker thread from the first part to the commit.

    The worker deletes the date's rows and inserts each part as soon as it is landed
    (DuckDB releases the GIL, so this overlaps the extraction of the next part); other
    readers see the old rows until the commit. It holds the file from the first part
    to the commit, which for a daily batch is the length of one extraction.
    """

    def __init__(self, warehouse: DuckDBWarehouse, meta: LoadMeta) -> None:
        self.wh = warehouse
        self.meta = meta
        self.expected = 0
        self.rejects: LakeObject | None = None
        self._inbox: queue.Queue[LakeObject | str] = queue.Queue()
        self._outcome: queue.Queue[int | BaseException] = queue.Queue(maxsize=1)
        self._finished = False
        self._worker = threading.Thread(target=self._work, name="duckdb-load", daemon=True)
        self._worker.start()

    def add(self, part: LakeObject) -> None:
        self.expected += part.records
        self._inbox.put(part)

    def add_rejects(self, rejects: LakeObject) -> None:
        self.rejects = rejects

    def commit(self) -> int:
        outcome = self._finish("commit")
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def abort(self) -> None:
        if not self._finished:
            self._finish("abort")

    def _finish(self, command: str) -> int | BaseException:
        self._finished = True
        self._inbox.put(command)
        outcome = self._outcome.get()
        self._worker.join()
        return outcome

    def _work(self) -> None:
        item = self._inbox.get()
        try:
            outcome: int | BaseException = 0 if item == "abort" else self._transaction(item)
        except _Aborted:
            outcome = 0
        except BaseException as exc:  # handed to commit()
            outcome = exc
        self._outcome.put(outcome)

    def _transaction(self, item: LakeObject | str) -> int:
        raw, m = self.wh.raw, self.meta
        with self.wh.connect() as con, _loading(con), _transaction(con):
            con.execute(f"DELETE FROM {raw}.{m.entity} WHERE _ingestion_date = ?", [m.day])
            alone = False
            while isinstance(item, LakeObject):
                if self._finished and not alone:
                    # The extraction is over: the parts still queued have the cores.
                    con.execute("RESET threads")
                    alone = True
                started = time.perf_counter()
                self._insert(con, item)
                log.debug(
                    "duckdb.insert",
                    extra={
                        "part": item.key,
                        "rows": item.records,
                        "seconds": time.perf_counter() - started,
                    },
                )
                item = self._inbox.get()
            if item == "abort":
                raise _Aborted
            loaded = self._reconcile(con)
            self._swap_quarantine(con)
        return loaded

    def _insert(self, con: duckdb.DuckDBPyConnection, part: LakeObject) -> None:
        m = self.meta
        try:
            con.execute(
                f"""INSERT INTO {self.wh.raw}.{m.entity} ({", ".join(_LOADED_COLUMNS)})
                    SELECT j, ?, ?, now(), ?, ? FROM {_LINES}""",
                [m.day, m.extracted_at, part.uri, m.run_id, part.uri],
            )
        except duckdb.Error as exc:
            raise _error(self.wh.path, exc, f"loading {part.key} into") from exc

    def _reconcile(self, con: duckdb.DuckDBPyConnection) -> int:
        m = self.meta
        row = con.execute(
            f"SELECT count(*) FROM {self.wh.raw}.{m.entity} WHERE _ingestion_date = ?", [m.day]
        ).fetchone()
        loaded = int(row[0]) if row else 0
        if loaded != self.expected:
            raise ReconciliationError(
                f"{m.entity} {m.day}: landed {self.expected} records, loaded {loaded}; "
                "nothing changed"
            )
        return loaded

    def _swap_quarantine(self, con: duckdb.DuckDBPyConnection) -> None:
        raw, m = self.wh.raw, self.meta
        con.execute(
            f"DELETE FROM {raw}._quarantine WHERE entity = ? AND _ingestion_date = ?",
            [m.entity, m.day],
        )
        if self.rejects is None or not self.rejects.records:
            return
        con.execute(
            f"""INSERT INTO {raw}._quarantine
                SELECT ?, ?, ?, json_extract_string(j, '$.reason'), json_extract(j, '$.record'),
                       ?, now()
                FROM read_json_objects(?, format = 'newline_delimited') AS t(j)""",
            [m.entity, m.day, m.run_id, self.rejects.uri, self.rejects.uri],
        )


# Each event is parsed once, into a struct (ten ->> extractions parsed it ten times).
_EVENT_SHAPE = orjson.dumps(
    {
        "event_id": "VARCHAR",
        "event_type": "VARCHAR",
        "schema_version": "INTEGER",
        "cart_id": "BIGINT",
        "cart_version": "BIGINT",
        "content_hash": "VARCHAR",
        "cart": "JSON",
        "extracted_at": "TIMESTAMPTZ",
        "published_at": "TIMESTAMPTZ",
    }
).decode()


class DuckDBEventSink:
    """Inserts event batches through Arrow, skipping stored ids (``INSERT OR IGNORE`` on
    the primary key, in the same transaction). Keeps its connection for up to
    ``hold_seconds`` between batches, then lets go so a batch load can take its turn."""

    def __init__(self, warehouse: DuckDBWarehouse, hold_seconds: float) -> None:
        self.wh = warehouse
        self.hold_seconds = hold_seconds
        self._con: duckdb.DuckDBPyConnection | None = None
        self._opened = 0.0
        self._held = ExitStack()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = self._held.enter_context(self.wh.connect())
            # Every commit is in the WAL, durable; checkpointing it into the table at
            # DuckDB's default 16 MB made commits of event batches 2 times slower. The
            # file is checkpointed when the sink lets go of it (at most hold_seconds).
            # Database-wide, so reset when it lets go: a batch load in the same process
            # (``up``) keeps DuckDB's default.
            self._con.execute("SET checkpoint_threshold = '256MB'")
            self._opened = time.monotonic()
        return self._con

    def write(self, rows: EventRows) -> int:
        import pyarrow as pa

        batch = pa.table(
            {
                # UTF-8 checked by Arrow in C, not decoded message by message in Python
                "data": pa.array(rows.data, pa.binary()).cast(pa.string()),
                "message_id": pa.array(rows.message_ids, pa.string()),
                "publish_time": pa.array(rows.publish_times, pa.timestamp("us", tz="UTC")),
            }
        )
        con = self._connection()
        con.register("incoming", batch)
        try:
            inserted = self._insert(con)
        except duckdb.Error as exc:
            self.release()
            raise _error(self.wh.path, exc, "writing events into") from exc
        finally:
            if self._con is not None:
                con.unregister("incoming")
        if time.monotonic() - self._opened > self.hold_seconds:
            self.release()
        return inserted

    def _insert(self, con: duckdb.DuckDBPyConnection) -> int:
        with _transaction(con):
            row = con.execute(
                f"""INSERT OR IGNORE INTO {self.wh.raw}.carts_events
                SELECT e.event_id, e.event_type, e.schema_version, e.cart_id, e.cart_version,
                       e.content_hash, CASE WHEN e.event_type = 'cart_deleted' THEN NULL
                                            ELSE e.cart END,
                       e.extracted_at, e.published_at, message_id, publish_time, now(),
                       CAST(e.published_at AT TIME ZONE 'UTC' AS DATE)
                FROM (SELECT json_transform(data, '{_EVENT_SHAPE}') AS e, message_id,
                             publish_time FROM incoming)
                QUALIFY row_number() OVER (PARTITION BY e.event_id ORDER BY message_id) = 1"""
            ).fetchone()
        return int(row[0]) if row else 0

    def release(self) -> None:
        try:
            if self._con is not None:
                with contextlib.suppress(duckdb.Error):  # a broken connection is closed anyway
                    self._con.execute("RESET checkpoint_threshold")
        finally:
            self._held.close()
            self._con = None
