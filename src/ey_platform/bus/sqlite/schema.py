"""The tables of the bus file, its format version, and the subscriptions it holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ey_platform.errors import BusError

FORMAT_VERSION = 2  # PRAGMA user_version

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    name TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    ack_deadline REAL NOT NULL,
    max_attempts INTEGER NOT NULL,
    dead_letter_topic TEXT
);
-- One publish call. AUTOINCREMENT: ids are never reused, so message ids stay unique.
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    publish_time REAL NOT NULL,
    size INTEGER NOT NULL,
    message_ids BLOB,          -- JSON array; NULL: segment * SEGMENT_MAX + index
    keys BLOB NOT NULL,        -- JSON array of ordering keys
    ends BLOB NOT NULL,        -- per message, where its attributes and its data end
    payload BLOB NOT NULL      -- per message, its attributes (JSON) then its data
);
-- What a subscription still has to deliver of a segment; gone once all is acked.
CREATE TABLE IF NOT EXISTS cursors (
    subscription TEXT NOT NULL,
    segment INTEGER NOT NULL,
    unacked INTEGER NOT NULL,
    state BLOB,                -- attempts then lease ends per message; NULL: none delivered
    PRIMARY KEY (subscription, segment)
) WITHOUT ROWID;
"""

# The dead-letter subscription is read by people, not by a consumer: it never gives up.
_DEAD_LETTER_ATTEMPTS = 1_000_000


def check_format(con: sqlite3.Connection, path: Path) -> bool:
    """Is there a bus in the file? Refuses one of another format; writes nothing."""
    format_1 = con.execute(  # its one table of messages
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'"
    ).fetchone()
    if format_1 is not None:
        raise BusError(
            f"{path} holds a bus of an older format (one row per message). "
            "Drain it with the version that wrote it, or move it away to start empty."
        )
    (written,) = con.execute("PRAGMA user_version").fetchone()
    if written > FORMAT_VERSION:
        raise BusError(
            f"{path} holds a bus of format {written}, newer than this version "
            f"reads ({FORMAT_VERSION}). Run the version that wrote it."
        )
    found = con.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
        "AND name IN ('subscriptions', 'segments', 'cursors')"
    ).fetchone()
    return bool(found[0] == 3)


def create_tables(con: sqlite3.Connection) -> None:
    """The tables, if missing, and the format version."""
    con.executescript(_SCHEMA)
    con.execute(f"PRAGMA user_version = {FORMAT_VERSION}")


def add_subscriptions(
    con: sqlite3.Connection,
    topic: str,
    subscription: str,
    dead_letter_topic: str,
    dead_letter_subscription: str,
    *,
    ack_deadline: float,
    max_delivery_attempts: int,
) -> None:
    """The subscription of ``topic`` and the one of its dead-letter topic, created or
    given the deadline and attempts asked for (in a write transaction)."""
    con.executemany(
        "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
        "SET ack_deadline = excluded.ack_deadline, max_attempts = excluded.max_attempts",
        [
            (subscription, topic, ack_deadline, max_delivery_attempts, dead_letter_topic),
            (
                dead_letter_subscription,
                dead_letter_topic,
                ack_deadline,
                _DEAD_LETTER_ATTEMPTS,
                None,
            ),
        ],
    )


def subscriptions_of(
    con: sqlite3.Connection, topic: str, cache: dict[str, list[str]], path: Path
) -> list[str]:
    """The subscriptions of ``topic``, read once per connection (``cache`` is its own).
    A topic without one was never set up: publishing to it would lose the messages."""
    if topic not in cache:
        rows = con.execute("SELECT name FROM subscriptions WHERE topic = ?", [topic])
        cache[topic] = [r[0] for r in rows]
    if not cache[topic]:
        raise BusError(f"topic {topic} has no subscription in {path}: run setup")
    return cache[topic]
