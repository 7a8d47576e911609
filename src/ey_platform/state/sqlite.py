"""The poller's state in a SQLite file beside the bus (see :mod:`ey_platform.state.base`).

Every method turns SQLite's and the operating system's errors into one
:class:`StateError` that names the file and what to do.
:meth:`SQLitePollerState.open_read_only` opens the file for ``stream status`` without
ever creating or writing it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from ey_platform.errors import StateError
from ey_platform.sqlite_files import connect_read_only, file_error, guarded, write_transaction
from ey_platform.state.base import CartState, Known, PollResult

_SCHEMA = """
CREATE TABLE IF NOT EXISTS carts (
    cart_id INTEGER PRIMARY KEY,
    content_hash TEXT,          -- NULL once deleted
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS polls (
    poll_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,
    fetched INTEGER, created INTEGER, updated INTEGER, deleted INTEGER,
    quarantined INTEGER, error TEXT
);
"""


class SQLitePollerState:
    """The state in ``path``, created if missing. With ``read_only`` (see
    :meth:`open_read_only`) only :meth:`load` and :meth:`last_poll` work."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self.con = self._open()
        # The carts as last read, kept up to date by save: a poll reads the file only
        # when another connection has written it since (SQLite's data_version), so a
        # steady poll of 1M carts does not reload 1M rows (bench/RESULTS.md).
        self._memory: dict[int, Known] | None = None
        self._memory_version: int | None = None

    @classmethod
    def open_read_only(cls, path: Path) -> SQLitePollerState | None:
        """The state in ``path`` for reading only, or None when there is none yet (no
        file, or one without the tables). Creates no file or folder and never writes;
        works in a read-only folder and beside a poller that is writing."""
        if not path.exists():
            return None
        state = cls(path, read_only=True)
        try:
            found = state._has_tables()
        except BaseException:
            state.close()
            raise
        if not found:
            state.close()
            return None
        return state

    @guarded("open")
    def _open(self) -> sqlite3.Connection:
        if self.read_only:
            return connect_read_only(self.path, timeout=60)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Built by one thread, used by the poller's: one user at a time.
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = FULL")
            con.executescript(_SCHEMA)
        except BaseException:
            con.close()
            raise
        return con

    def _failed(self, op: str, exc: sqlite3.Error | OSError) -> StateError:
        return file_error(
            StateError,
            "poller state",
            self.path,
            op,
            exc,
            "move it away and the next poll rebuilds it from the warehouse (only the poll "
            "history is lost)",
        )

    def _writable(self, op: str) -> None:
        if self.read_only:
            raise StateError(f"poller state {self.path} is open read-only: {op} cannot run")

    @guarded("open")
    def _has_tables(self) -> bool:
        (found,) = self.con.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('carts', 'polls')"
        ).fetchone()
        return bool(found == 2)

    @guarded("load")
    def load(self) -> dict[int, Known]:
        """Every cart, from memory unless another connection wrote the file since it
        was read (a copy: the caller's dict does not move as the poll saves)."""
        (version,) = self.con.execute("PRAGMA data_version").fetchone()
        if self._memory is None or version != self._memory_version:
            self._memory = None  # a read that fails leaves no half memory behind
            rows = self.con.execute("SELECT cart_id, content_hash, version FROM carts")
            self._memory = {cid: Known(h, v) for cid, h, v in rows}
            self._memory_version = version
        return dict(self._memory)

    @guarded("save")
    def save(self, changes: Iterable[CartState]) -> None:
        """Record (cart id, content hash or None if deleted, version), durably."""
        self._writable("save")
        changes = list(changes)
        try:
            with write_transaction(self.con):
                self.con.executemany(
                    "INSERT INTO carts VALUES (?, ?, ?) ON CONFLICT (cart_id) DO UPDATE "
                    "SET content_hash = excluded.content_hash, version = excluded.version",
                    changes,
                )
            if self._memory is not None:
                self._memory.update((cid, Known(h, v)) for cid, h, v in changes)
        except BaseException:
            self._memory = None  # committed or not, the next load reads the file
            raise

    @guarded("record poll")
    def record_poll(self, poll: PollResult) -> None:
        self._writable("record poll")
        self.con.execute(
            "INSERT OR REPLACE INTO polls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                poll.poll_id,
                poll.started_at,
                poll.finished_at,
                poll.status,
                poll.fetched,
                poll.created,
                poll.updated,
                poll.deleted,
                poll.quarantined,
                poll.error,
            ],
        )

    @guarded("last poll")
    def last_poll(self) -> PollResult | None:
        cursor = self.con.execute("SELECT * FROM polls ORDER BY started_at DESC LIMIT 1")
        row = cursor.fetchone()
        if row is None:
            return None
        return PollResult(**{d[0]: v for d, v in zip(cursor.description, row, strict=True)})

    def close(self) -> None:
        self.con.close()
