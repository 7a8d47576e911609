"""The embedded bus: one SQLite file in WAL mode, shared by any number of processes.

Each subscription has its own copy of a message (a row of ``deliveries``) with its
delivery attempts and lease. Writes run in ``BEGIN IMMEDIATE`` transactions, so
publishers and pullers in several processes serialise on SQLite's write lock, and
readers never block. With ``synchronous=FULL`` a publish returns once the WAL is on
disk (survives a power cut); ``normal`` survives a crash of the process only.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from ey_platform.bus.base import BusStats, Message, Received

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    name TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    ack_deadline REAL NOT NULL,
    max_attempts INTEGER NOT NULL,
    dead_letter_topic TEXT
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    subscription TEXT NOT NULL,
    message_id TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    data BLOB NOT NULL,
    attributes TEXT NOT NULL,
    publish_time REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS deliveries_order ON deliveries (subscription, id);
CREATE INDEX IF NOT EXISTS deliveries_lease ON deliveries (subscription, lease_until);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('message_id', 1);
"""

# Not leased now, in publish order. Keys held back by a lease are filtered in Python:
# the leased messages are few, so they are read once per pull.
_DUE = """
SELECT id, message_id, ordering_key, data, attributes, publish_time, attempts
FROM deliveries INDEXED BY deliveries_order
WHERE subscription = :sub AND lease_until <= :now
ORDER BY id
LIMIT :limit
"""
_LEASED_KEYS = """
SELECT ordering_key, min(id) FROM deliveries INDEXED BY deliveries_lease
WHERE subscription = :sub AND lease_until > :now AND ordering_key != ''
GROUP BY ordering_key
"""
# Sets of ids travel as one JSON array: one statement per batch, not one per message.
_IDS = "SELECT value FROM json_each(?)"

Sync = Literal["full", "normal"]


class SQLiteBus:
    """Topic ``topic``, subscription ``subscription``, dead letters to ``dead_letter_topic``
    (kept on the subscription ``<dead_letter_topic>-sub``)."""

    def __init__(
        self,
        path: Path,
        topic: str = "carts-events",
        subscription: str = "carts-events-sub",
        dead_letter_topic: str = "carts-events-dlq",
        *,
        ack_deadline: float = 60.0,
        max_delivery_attempts: int = 5,
        sync: Sync = "full",
        busy_timeout: float = 60.0,
    ) -> None:
        self.path = path
        self.topic = topic
        self.subscription = subscription
        self.dead_letter_topic = dead_letter_topic
        self.dead_letter_subscription = f"{dead_letter_topic}-sub"
        self.ack_deadline = ack_deadline
        self.max_delivery_attempts = max_delivery_attempts
        self.sync = sync
        self.busy_timeout = busy_timeout
        self._local = threading.local()

    # -- connection -----------------------------------------------------------------

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            con.execute("PRAGMA journal_mode = WAL")
            con.execute(f"PRAGMA synchronous = {self.sync.upper()}")
            self._local.con = con
        return con

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
            self._local.__dict__.pop("subscriptions", None)

    # -- the interface --------------------------------------------------------------

    def setup(self) -> None:
        con = self._con()
        con.executescript(_SCHEMA)
        with self._write() as con:
            con.executemany(
                "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
                "SET ack_deadline = excluded.ack_deadline, max_attempts = excluded.max_attempts",
                [
                    (
                        self.subscription,
                        self.topic,
                        self.ack_deadline,
                        self.max_delivery_attempts,
                        self.dead_letter_topic,
                    ),
                    (
                        self.dead_letter_subscription,
                        self.dead_letter_topic,
                        self.ack_deadline,
                        1_000_000,
                        None,
                    ),
                ],
            )

    def publish(self, messages: Sequence[Message]) -> list[str]:
        return self._publish(self.topic, messages)

    def _publish(self, topic: str, messages: Sequence[Message]) -> list[str]:
        if not messages:
            return []
        now = time.time()
        subscriptions = self._subscriptions(topic)
        with self._write() as con:
            (last,) = con.execute(
                "UPDATE counters SET value = value + ? WHERE name = 'message_id' RETURNING value",
                [len(messages)],
            ).fetchone()
            ids = [str(i) for i in range(last - len(messages), last)]
            for sub in subscriptions:
                con.executemany(
                    "INSERT INTO deliveries (subscription, message_id, ordering_key, data, "
                    "attributes, publish_time) VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (sub, mid, m.ordering_key, m.data, orjson.dumps(m.attributes), now)
                        for mid, m in zip(ids, messages, strict=True)
                    ],
                )
        return ids

    def _subscriptions(self, topic: str) -> list[str]:
        """The subscriptions of ``topic``, read once per connection (made by setup())."""
        cache: dict[str, list[str]] = self._local.__dict__.setdefault("subscriptions", {})
        if topic not in cache:
            rows = self._con().execute("SELECT name FROM subscriptions WHERE topic = ?", [topic])
            cache[topic] = [r[0] for r in rows]
        return cache[topic]

    def pull(self, max_messages: int) -> list[Received]:
        now = time.time()
        args = {"sub": self.subscription, "now": now, "limit": max_messages}
        with self._write() as con:
            held = dict(con.execute(_LEASED_KEYS, args).fetchall())
            rows = con.execute(_DUE, args).fetchall()
            if held:  # a key waits while an earlier message of it is leased
                rows = [r for r in rows if not r[2] or held.get(r[2], r[0] + 1) > r[0]]
            spent = [r for r in rows if r[6] >= self.max_delivery_attempts]
            if spent:
                self._to_dead_letters(con, spent, "max delivery attempts exceeded", now)
            live = [r for r in rows if r[6] < self.max_delivery_attempts]
            con.execute(
                f"UPDATE deliveries SET attempts = attempts + 1, lease_until = ? "
                f"WHERE id IN ({_IDS})",
                [now + self.ack_deadline, orjson.dumps([r[0] for r in live])],
            )
        return [_received(r, attempt=r[6] + 1) for r in live]

    def _to_dead_letters(
        self, con: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], reason: str, now: float
    ) -> None:
        con.executemany(
            "INSERT INTO deliveries (subscription, message_id, ordering_key, data, attributes, "
            "publish_time) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    self.dead_letter_subscription,
                    r[1],
                    r[2],
                    r[3],
                    orjson.dumps(
                        {
                            **orjson.loads(r[4]),
                            "dead_letter_reason": reason,
                            "delivery_attempts": str(r[6]),
                        }
                    ),
                    now,
                )
                for r in rows
            ],
        )
        con.executemany("DELETE FROM deliveries WHERE id = ?", [(r[0],) for r in rows])

    def ack(self, ack_ids: Sequence[str]) -> int:
        if not ack_ids:
            return 0
        pairs = orjson.dumps([_parse_ack(a) for a in ack_ids])
        with self._write() as con:
            cursor = con.execute(
                "DELETE FROM deliveries WHERE subscription = ? AND (id, attempts) IN "
                "(SELECT value ->> 0, value ->> 1 FROM json_each(?))",
                [self.subscription, pairs],
            )
            return cursor.rowcount

    def nack(self, ack_ids: Sequence[str]) -> None:
        with self._write() as con:
            con.executemany(
                "UPDATE deliveries SET lease_until = 0 WHERE id = ? AND attempts = ?",
                [_parse_ack(a) for a in ack_ids],
            )

    def dead_letter(self, received: Received, reason: str) -> None:
        row, attempt = _parse_ack(received.ack_id)
        with self._write() as con:
            found = con.execute(
                "SELECT id, message_id, ordering_key, data, attributes, publish_time, attempts "
                "FROM deliveries WHERE id = ? AND attempts = ?",
                [row, attempt],
            ).fetchall()
            self._to_dead_letters(con, found, reason, time.time())

    def stats(self) -> BusStats:
        now = time.time()
        con = self._con()
        backlog, leased, oldest = con.execute(
            "SELECT count(*), coalesce(sum(lease_until > ?), 0), min(publish_time) "
            "FROM deliveries WHERE subscription = ?",
            [now, self.subscription],
        ).fetchone()
        (dead,) = con.execute(
            "SELECT count(*) FROM deliveries WHERE subscription = ?",
            [self.dead_letter_subscription],
        ).fetchone()
        return BusStats(backlog, leased, None if oldest is None else now - oldest, dead)

    def dead_letters(self, limit: int = 100) -> list[Received]:
        """Peek at the dead-letter subscription without leasing (for status and tests)."""
        rows = (
            self._con()
            .execute(
                "SELECT id, message_id, ordering_key, data, attributes, publish_time, attempts "
                "FROM deliveries WHERE subscription = ? ORDER BY id LIMIT ?",
                [self.dead_letter_subscription, limit],
            )
            .fetchall()
        )
        return [_received(r, attempt=r[6]) for r in rows]


def _received(row: tuple[Any, ...], attempt: int) -> Received:
    """A row of ``deliveries`` (id, message_id, ordering_key, data, attributes,
    publish_time, attempts) as the delivery numbered ``attempt``."""
    return Received(
        ack_id=f"{row[0]}:{attempt}",
        message_id=row[1],
        data=row[3],
        attributes=orjson.loads(row[4]),
        ordering_key=row[2],
        publish_time=datetime.fromtimestamp(row[5], UTC),
        delivery_attempt=attempt,
    )


def _parse_ack(ack_id: str) -> tuple[int, int]:
    row, _, attempt = ack_id.partition(":")
    return int(row), int(attempt)
