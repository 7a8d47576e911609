"""The bus file: one SQLite connection per thread, write transactions, and errors in
words a person can act on.

Writes run in ``BEGIN IMMEDIATE`` transactions, so publishers and pullers in several
processes serialise on SQLite's write lock, and readers never block. With
``synchronous=FULL`` a publish returns once the WAL is on disk (survives a power cut);
``normal`` survives a crash of the process only.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Literal

from ey_platform.errors import BusError
from ey_platform.sqlite_files import connect_read_only, file_error, write_transaction

Sync = Literal["full", "normal"]


class Access(Enum):
    """How the bus opens its file."""

    READ_WRITE = "read-write"
    READ_ONLY = "read-only"  # never creates, changes or writes the file


class Connections:
    """The connections of one bus to ``path``: each thread gets its own, and
    :meth:`close` closes every one of them."""

    def __init__(self, path: Path, *, sync: Sync, busy_timeout: float, access: Access) -> None:
        self.path = path
        self.sync = sync
        self.busy_timeout = busy_timeout
        self.access = access
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[tuple[threading.Thread, sqlite3.Connection]] = []

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            with self._lock:
                self._reap()
            con = self._connect()
            with self._lock:
                self._opened.append((threading.current_thread(), con))
            self._local.con = con
        return con

    def subscriptions_by_topic(self) -> dict[str, list[str]]:
        """This thread's cache of the subscriptions of each topic; :meth:`close` drops it."""
        cache: dict[str, list[str]] = self._local.__dict__.setdefault("subscriptions", {})
        return cache

    def _connect(self) -> sqlite3.Connection:
        if self.access is Access.READ_ONLY:
            return connect_read_only(self.path, self.busy_timeout)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread off: only this thread uses it, but close() may run elsewhere
        con = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute(f"PRAGMA synchronous = {self.sync.upper()}")
            # Python's SQLite is often built to zero every freed page (SECURE_DELETE):
            # each finished segment would be written over in full, through the WAL. A
            # bus has nothing to hide that the warehouse does not hold.
            con.execute("PRAGMA secure_delete = OFF")
        except BaseException:
            con.close()
            raise
        return con

    def _reap(self) -> None:
        """Close the connections of threads that have ended (called under the lock)."""
        ended = [con for thread, con in self._opened if not thread.is_alive()]
        self._opened = [(t, con) for t, con in self._opened if t.is_alive()]
        for con in ended:
            con.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection: committed, or rolled back."""
        if self.access is Access.READ_ONLY:
            raise BusError(
                f"bus file {self.path} is open read-only: nothing is published, pulled "
                "or acked through it"
            )
        with write_transaction(self.get()) as con:
            yield con

    def failed(self, op: str, exc: sqlite3.Error | OSError) -> BusError:
        """The one error a failed ``op`` on the file raises, with what to do."""
        return file_error(
            BusError,
            "bus file",
            self.path,
            op,
            exc,
            "move it away and the bus starts empty; the messages it held are lost (move the "
            "poller state away too, and the poller publishes again what the warehouse lacks)",
        )

    def close(self) -> None:
        """Close every connection opened, in any thread."""
        with self._lock:
            opened, self._opened = self._opened, []
            self._local = threading.local()
        for _, con in opened:
            con.close()
