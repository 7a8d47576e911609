"""A batch load on DuckDB: one transaction that replaces an ingestion date."""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import duckdb

from ey_platform.errors import ReconciliationError
from ey_platform.lake.base import LakeObject
from ey_platform.warehouse.base import LoadMeta
from ey_platform.warehouse.duckdb.connection import error, transaction
from ey_platform.warehouse.raw_schema import raw_table

if TYPE_CHECKING:
    from ey_platform.warehouse.duckdb.warehouse import DuckDBWarehouse

log = logging.getLogger(__name__)

# A landed part, one JSON record per line, read as one text column. Every line is a
# record that passed validation, and JSON text holds no raw control byte, so \x01
# can never be a delimiter; this skips a JSON parse of every line (read_json_objects)
# without storing anything that is not valid JSON.
_LINES = r"""read_csv($uri, columns = {'j': 'VARCHAR'}, delim = '\x01', quote = '', escape = '',
             header = false, new_line = '\n', auto_detect = false) AS t"""

# The value of each stored column of a raw record table, for one part ($uri) of a load.
_RECORD_VALUES = {
    "_raw": "j",
    "_ingestion_date": "$day",
    "_extracted_at": "$extracted_at",
    "_loaded_at": "now()",
    "_source_file": "$uri",
    "_run_id": "$run_id",
}
# The value of each column of the quarantine, for the rejects file ($uri) of a load.
_QUARANTINE_VALUES = {
    "entity": "$entity",
    "_ingestion_date": "$day",
    "_run_id": "$run_id",
    "reason": "json_extract_string(j, '$.reason')",
    "record": "json_extract(j, '$.record')",
    "_source_file": "$uri",
    "_loaded_at": "now()",
}


def _insert_sql(target: str, table: str, values: dict[str, str], source: str) -> str:
    """``INSERT`` of the stored columns of ``table`` (schema order), each from ``values``."""
    columns = [c.name for c in raw_table(table).stored]
    select = ", ".join(values[name] for name in columns)
    return f"INSERT INTO {target} ({', '.join(columns)}) SELECT {select} FROM {source}"


class Finish(enum.Enum):
    """How the worker ends the load's transaction."""

    COMMIT = enum.auto()
    ABORT = enum.auto()


class _Aborted(Exception):
    pass


# Settings for a load that runs beside the extraction (see _loading); SQL literals.
_LOAD_SETTINGS = {"threads": "1", "preserve_insertion_order": "false", "memory_limit": "'256MB'"}


@contextmanager
def _loading(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Settings for a load that runs beside the extraction:

    - one thread, so that it does not fight the validating processes for the cores,
      until the extraction is over: the parts still queued then load with every core;
    - no ordering work on raw rows;
    - a 256 MB memory limit. Without one, DuckDB keeps the transaction's new row groups
      in memory and writes them all at the commit, a tail after the extraction has
      ended. Under the limit it writes them into the file as the parts arrive,
      overlapping the extraction, with less peak memory. Nothing spills to temporary
      files.

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
        self._inbox: queue.Queue[LakeObject | Finish] = queue.Queue()
        self._outcome: queue.Queue[int | BaseException] = queue.Queue(maxsize=1)
        self._finished = False
        target = warehouse.table(meta.entity)
        self._insert_part = _insert_sql(target, meta.entity, _RECORD_VALUES, _LINES)
        self._worker = threading.Thread(target=self._work, name="duckdb-load", daemon=True)
        self._worker.start()

    def add(self, part: LakeObject) -> None:
        self.expected += part.records
        self._inbox.put(part)

    def add_rejects(self, rejects: LakeObject) -> None:
        self.rejects = rejects

    def commit(self) -> int:
        outcome = self._finish(Finish.COMMIT)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def abort(self) -> None:
        if not self._finished:
            self._finish(Finish.ABORT)

    def _finish(self, how: Finish) -> int | BaseException:
        self._finished = True
        self._inbox.put(how)
        outcome = self._outcome.get()
        self._worker.join()
        return outcome

    def _work(self) -> None:
        item = self._inbox.get()
        try:
            outcome: int | BaseException = 0 if item is Finish.ABORT else self._transaction(item)
        except _Aborted:
            outcome = 0
        except BaseException as exc:  # handed to commit()
            outcome = exc
        self._outcome.put(outcome)

    def _transaction(self, item: LakeObject | Finish) -> int:
        m = self.meta
        with self.wh.connect() as con, _loading(con), transaction(con):
            con.execute(f"DELETE FROM {self.wh.table(m.entity)} WHERE _ingestion_date = ?", [m.day])
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
            if item is Finish.ABORT:
                raise _Aborted
            loaded = self._reconcile(con)
            self._swap_quarantine(con)
        return loaded

    def _insert(self, con: duckdb.DuckDBPyConnection, part: LakeObject) -> None:
        m = self.meta
        values = {"day": m.day, "extracted_at": m.extracted_at, "uri": part.uri, "run_id": m.run_id}
        try:
            con.execute(self._insert_part, values)
        except duckdb.Error as exc:
            raise error(self.wh.path, exc, f"loading {part.key} into") from exc

    def _reconcile(self, con: duckdb.DuckDBPyConnection) -> int:
        m = self.meta
        row = con.execute(
            f"SELECT count(*) FROM {self.wh.table(m.entity)} WHERE _ingestion_date = ?", [m.day]
        ).fetchone()
        loaded = int(row[0]) if row else 0
        if loaded != self.expected:
            raise ReconciliationError(
                f"{m.entity} {m.day}: landed {self.expected} records, loaded {loaded}; "
                "nothing changed"
            )
        return loaded

    def _swap_quarantine(self, con: duckdb.DuckDBPyConnection) -> None:
        m = self.meta
        quarantine = self.wh.table("_quarantine")
        con.execute(
            f"DELETE FROM {quarantine} WHERE entity = ? AND _ingestion_date = ?",
            [m.entity, m.day],
        )
        if self.rejects is None or not self.rejects.records:
            return
        source = "read_json_objects($uri, format = 'newline_delimited') AS t(j)"
        sql = _insert_sql(quarantine, "_quarantine", _QUARANTINE_VALUES, source)
        values = {"entity": m.entity, "day": m.day, "run_id": m.run_id, "uri": self.rejects.uri}
        con.execute(sql, values)
