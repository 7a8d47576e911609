"""The poller's durable memory: what it last published for every cart.

A SQLite file beside the bus. The state of a cart changes only after the bus has
confirmed the publish of its event, so a crash between the two publishes the event
again (with the same event id) and never loses it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

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


CartState = tuple[int, str | None, int]  # cart id, content hash (None: deleted), version


@dataclass(frozen=True, slots=True)
class Known:
    content_hash: str | None
    version: int


@dataclass
class PollResult:
    """One poll: what it fetched and published, and how it ended. The poller returns it
    and records it here (all but ``unchanged`` and ``seconds``) for ``stream status``."""

    poll_id: str
    started_at: float
    status: str = "running"
    finished_at: float | None = None
    fetched: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    quarantined: int = 0
    error: str | None = None
    seconds: float = 0.0

    @property
    def published(self) -> int:
        return self.created + self.updated + self.deleted


class PollerState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Built by one thread, used by the poller's: one user at a time.
        self.con = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        self.con.execute("PRAGMA journal_mode = WAL")
        self.con.execute("PRAGMA synchronous = FULL")
        self.con.executescript(_SCHEMA)

    def load(self) -> dict[int, Known]:
        rows = self.con.execute("SELECT cart_id, content_hash, version FROM carts")
        return {cid: Known(h, v) for cid, h, v in rows}

    def save(self, changes: Iterable[CartState]) -> None:
        """Record (cart id, content hash or None if deleted, version), durably."""
        self.con.execute("BEGIN IMMEDIATE")
        self.con.executemany(
            "INSERT INTO carts VALUES (?, ?, ?) ON CONFLICT (cart_id) DO UPDATE "
            "SET content_hash = excluded.content_hash, version = excluded.version",
            changes,
        )
        self.con.execute("COMMIT")

    def record_poll(self, poll: PollResult) -> None:
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

    def last_poll(self) -> PollResult | None:
        cursor = self.con.execute("SELECT * FROM polls ORDER BY started_at DESC LIMIT 1")
        row = cursor.fetchone()
        if row is None:
            return None
        return PollResult(**{d[0]: v for d, v in zip(cursor.description, row, strict=True)})

    def close(self) -> None:
        self.con.close()
