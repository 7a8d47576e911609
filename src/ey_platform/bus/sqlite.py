"""The embedded bus: one SQLite file in WAL mode, shared by any number of processes.

Messages are stored by *segment*: each publish call is one immutable row of
``segments`` (the messages' ordering keys, attributes and payloads, end to end), and
each subscription keeps one row of ``cursors`` per segment it has not finished, with
every message's delivery attempts and lease end (an acked message's lease never ends).
A pull, an ack or a publish of a 20,000-event batch therefore writes one or two rows,
not 20,000: per-message rows made SQLite the bottleneck of the first poll.

Writes run in ``BEGIN IMMEDIATE`` transactions, so publishers and pullers in several
processes serialise on SQLite's write lock, and readers never block. With
``synchronous=FULL`` a publish returns once the WAL is on disk (survives a power cut);
``normal`` survives a crash of the process only.

Every public method turns SQLite's and the operating system's errors into one
:class:`BusError` that names the file, what is wrong with it and what to do.
:meth:`SQLiteBus.open_read_only` opens a bus for ``stream status``: it never creates,
changes or writes the file.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from array import array
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import orjson

from ey_platform.bus.base import BusStats, Message, Received
from ey_platform.errors import BusError
from ey_platform.sqlite_files import connect_read_only, failure, guarded

FORMAT_VERSION = 2  # PRAGMA user_version; 1 (unset) stored one row per message

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

Sync = Literal["full", "normal"]

_ACKED = math.inf  # the lease end of an acked message: it is never due again
# A publish call is stored in segments of at most this many messages, and a message id
# is ``segment * SEGMENT_MAX + index``: numeric and growing in publish order.
SEGMENT_MAX = 100_000


@dataclass
class _Cursor:
    """A subscription's view of one segment: attempts and lease end per message."""

    segment: int
    size: int
    unacked: int
    attempts: array[int]
    leases: array[float]
    changed: bool = False
    fresh: bool = False  # no message delivered yet

    @classmethod
    def load(cls, segment: int, size: int, unacked: int, state: bytes | None) -> _Cursor:
        attempts, leases = array("I"), array("d")
        if state is None:
            attempts.frombytes(bytes(4 * size))
            leases.frombytes(bytes(8 * size))
        else:
            attempts.frombytes(state[: 4 * size])
            leases.frombytes(state[4 * size :])
        return cls(segment, size, unacked, attempts, leases, fresh=state is None)

    def state(self) -> bytes:
        return self.attempts.tobytes() + self.leases.tobytes()

    def current(self, index: int, attempt: int) -> bool:
        """Is ``attempt`` the live delivery of message ``index``?"""
        return (
            0 <= index < self.size
            and self.attempts[index] == attempt
            and self.leases[index] != _ACKED
        )

    def settle(self, index: int) -> None:
        """Done with message ``index``: acked, or moved to the dead letters."""
        self.leases[index] = _ACKED
        self.unacked -= 1
        self.changed = True

    def release(self, index: int) -> None:
        """Give message ``index`` back: due again at once."""
        self.leases[index] = 0.0
        self.changed = True


class SQLiteBus:
    """Topic ``topic``, subscription ``subscription``, dead letters to ``dead_letter_topic``
    (kept on the subscription ``<dead_letter_topic>-sub``).

    Each thread gets its own connection; :meth:`close` closes every one of them, so
    call it once the threads that used the bus have ended. With ``read_only`` (see
    :meth:`open_read_only`) only :meth:`stats` and :meth:`dead_letters` work."""

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
        read_only: bool = False,
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
        self.read_only = read_only
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[tuple[threading.Thread, sqlite3.Connection]] = []

    @classmethod
    def open_read_only(
        cls,
        path: Path,
        topic: str = "carts-events",
        subscription: str = "carts-events-sub",
        dead_letter_topic: str = "carts-events-dlq",
        *,
        busy_timeout: float = 60.0,
    ) -> SQLiteBus | None:
        """The bus in ``path`` for :meth:`stats` and :meth:`dead_letters`, or None when
        there is no bus yet (no file, or a file a setup never finished). Creates no file
        or folder and never writes; works in a read-only folder and beside a writer."""
        if not path.exists():
            return None
        bus = cls(
            path, topic, subscription, dead_letter_topic, busy_timeout=busy_timeout, read_only=True
        )
        try:
            found = bus._check_format()
        except (sqlite3.Error, OSError) as exc:
            bus.close()
            raise bus._failed("open", exc) from exc
        except BaseException:
            bus.close()
            raise
        if not found:
            bus.close()
            return None
        return bus

    # -- connection -----------------------------------------------------------------

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            with self._lock:
                self._reap()
            con = self._connect()
            with self._lock:
                self._opened.append((threading.current_thread(), con))
            self._local.con = con
        return con

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
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
            # bus has nothing to hide that the warehouse does not hold: ack 2.8x faster.
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
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise BusError(
                f"bus file {self.path} is open read-only: nothing is published, pulled "
                "or acked through it"
            )
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:  # SQLite ends some on its own (a full disk)
                con.execute("ROLLBACK")
            raise

    def _failed(self, op: str, exc: sqlite3.Error | OSError) -> BusError:
        damaged, reason = failure(self.path, exc)
        if damaged:
            return BusError(
                f"bus file {self.path} {reason}: move it away and the bus starts empty; "
                "the messages it held are lost (move the poller state away too, and the "
                "poller publishes again what the warehouse lacks)"
            )
        return BusError(f"bus file {self.path}: {op} failed: {reason}")

    def close(self) -> None:
        """Close every connection the bus opened, in any thread."""
        with self._lock:
            opened, self._opened = self._opened, []
            self._local = threading.local()
        for _, con in opened:
            con.close()

    # -- the interface --------------------------------------------------------------

    def _check_format(self) -> bool:
        """Is there a bus in the file? Refuses one of another format; writes nothing."""
        con = self._con()
        old = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'"
        ).fetchone()
        if old is not None:
            raise BusError(
                f"{self.path} holds a bus of an older format (one row per message). "
                "Drain it with the version that wrote it, or move it away to start empty."
            )
        (written,) = con.execute("PRAGMA user_version").fetchone()
        if written > FORMAT_VERSION:
            raise BusError(
                f"{self.path} holds a bus of format {written}, newer than this version "
                f"reads ({FORMAT_VERSION}). Run the version that wrote it."
            )
        found = con.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
            "AND name IN ('subscriptions', 'segments', 'cursors')"
        ).fetchone()
        return bool(found[0] == 3)

    @guarded("setup")
    def setup(self) -> None:
        """Create the tables and subscriptions if missing. A failed setup leaves no
        connection open."""
        if self.read_only:
            raise BusError(f"bus file {self.path} is open read-only: setup cannot run")
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        self._check_format()
        con = self._con()
        con.executescript(_SCHEMA)
        con.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
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

    @guarded("publish")
    def publish(self, messages: Sequence[Message]) -> list[str]:
        if not messages:
            return []
        with self._write() as con:
            return [
                mid
                for start in range(0, len(messages), SEGMENT_MAX)
                for mid in self._store(con, self.topic, messages[start : start + SEGMENT_MAX])
            ]

    def _store(
        self,
        con: sqlite3.Connection,
        topic: str,
        messages: Sequence[Message],
        message_ids: list[str] | None = None,
    ) -> list[str]:
        """One segment of ``messages`` on ``topic``, and a cursor for each subscription."""
        subscriptions = self._subscriptions(topic)
        if not subscriptions:
            raise BusError(f"topic {topic} has no subscription in {self.path}: run setup")
        ends, parts = array("Q"), list[bytes]()
        end = 0
        for m in messages:
            attributes = orjson.dumps(m.attributes)
            parts += (attributes, m.data)
            end += len(attributes)
            ends.append(end)
            end += len(m.data)
            ends.append(end)
        segment: int = con.execute(
            "INSERT INTO segments (topic, publish_time, size, message_ids, keys, ends, payload) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                topic,
                time.time(),
                len(messages),
                None if message_ids is None else orjson.dumps(message_ids),
                orjson.dumps([m.ordering_key for m in messages]),
                ends.tobytes(),
                b"".join(parts),
            ],
        ).lastrowid  # type: ignore[assignment]  # an INSERT always sets it
        con.executemany(
            "INSERT INTO cursors VALUES (?, ?, ?, NULL)",
            [(sub, segment, len(messages)) for sub in subscriptions],
        )
        return message_ids or [str(segment * SEGMENT_MAX + i) for i in range(len(messages))]

    def _subscriptions(self, topic: str) -> list[str]:
        """The subscriptions of ``topic``, read once per connection (made by setup())."""
        cache: dict[str, list[str]] = self._local.__dict__.setdefault("subscriptions", {})
        if topic not in cache:
            rows = self._con().execute("SELECT name FROM subscriptions WHERE topic = ?", [topic])
            cache[topic] = [r[0] for r in rows]
        return cache[topic]

    @guarded("pull")
    def pull(self, max_messages: int) -> list[Received]:
        if max_messages < 1:
            raise BusError(
                f"pull from {self.subscription}: max_messages must be 1 or more, not {max_messages}"
            )
        now = time.time()
        until = now + self.ack_deadline
        taken: list[tuple[_Cursor, list[int], list[str]]] = []
        spent: list[tuple[_Cursor, list[int], list[str]]] = []
        wanted = max_messages
        with self._write() as con:
            # Keys with a message leased now, seen so far in publish order: a later
            # message of such a key waits for it.
            held: set[str] = set()
            walk = self._walk(con, self.subscription)
            for cursor, keys in walk:
                if wanted == 0:
                    break
                attempts, leases = cursor.attempts, cursor.leases
                mine, dead = [], []
                if cursor.fresh and not held and self.max_delivery_attempts > 0:
                    # never delivered, nothing held: the first ones are due, in order
                    mine = list(range(min(cursor.size, wanted)))
                    attempts[: len(mine)] = array("I", [1]) * len(mine)
                    leases[: len(mine)] = array("d", [until]) * len(mine)
                    wanted -= len(mine)
                    cursor.changed = True
                    taken.append((cursor, mine, keys))
                    continue
                for i in range(cursor.size):
                    lease = leases[i]
                    if lease > now:
                        if lease != _ACKED and keys[i]:
                            held.add(keys[i])
                        continue
                    if keys[i] and keys[i] in held:
                        continue
                    if attempts[i] >= self.max_delivery_attempts:
                        dead.append(i)
                        continue
                    attempts[i] += 1
                    leases[i] = until
                    mine.append(i)
                    wanted -= 1
                    if wanted == 0:
                        break
                if mine:
                    cursor.changed = True
                    taken.append((cursor, mine, keys))
                if dead:
                    spent.append((cursor, dead, keys))
            walk.close()
            for cursor, dead, keys in spent:
                self._to_dead_letters(con, cursor, dead, keys, "max delivery attempts exceeded")
            received = [
                m for cursor, mine, keys in taken for m in self._read(con, cursor, mine, keys)
            ]
            touched = {c.segment: c for c, _, _ in [*taken, *spent]}
            self._save(con, self.subscription, list(touched.values()))
        return received

    def _walk(
        self, con: sqlite3.Connection, subscription: str
    ) -> Generator[tuple[_Cursor, list[str]], None, None]:
        """The subscription's unfinished segments in publish order, lazily."""
        rows = con.execute(
            "SELECT c.segment, s.size, c.unacked, c.state, s.keys FROM cursors AS c "
            "JOIN segments AS s ON s.id = c.segment WHERE c.subscription = ? ORDER BY c.segment",
            [subscription],
        )
        try:
            for segment, size, unacked, state, keys in rows:
                yield _Cursor.load(segment, size, unacked, state), orjson.loads(keys)
        finally:
            rows.close()

    def _read(
        self, con: sqlite3.Connection, cursor: _Cursor, indexes: list[int], keys: list[str]
    ) -> list[Received]:
        """Messages ``indexes`` of a segment, as delivered now; only their bytes are read."""
        if not indexes:
            return []
        publish_time, message_ids, ends_blob = con.execute(
            "SELECT publish_time, message_ids, ends FROM segments WHERE id = ?", [cursor.segment]
        ).fetchone()
        ends = array("Q")
        ends.frombytes(ends_blob)
        first = ends[2 * indexes[0] - 1] if indexes[0] else 0
        last = ends[2 * indexes[-1] + 1]
        with con.blobopen("segments", "payload", cursor.segment, readonly=True) as blob:
            blob.seek(first)
            payload = blob.read(last - first)
        segment, attempts = cursor.segment, cursor.attempts
        ids = orjson.loads(message_ids) if message_ids is not None else None
        base = segment * SEGMENT_MAX
        when = datetime.fromtimestamp(publish_time, UTC)
        out = []
        for i in indexes:  # a million of these per first poll: positional and flat
            start = (ends[2 * i - 1] if i else 0) - first
            middle, end = ends[2 * i] - first, ends[2 * i + 1] - first
            attempt = attempts[i]
            out.append(
                Received(
                    f"{segment}:{i}:{attempt}",
                    ids[i] if ids is not None else str(base + i),
                    payload[middle:end],
                    orjson.loads(payload[start:middle]),
                    keys[i],
                    when,
                    attempt,
                )
            )
        return out

    def _save(self, con: sqlite3.Connection, subscription: str, cursors: list[_Cursor]) -> None:
        """Write back the cursors that changed; drop the finished ones, and a segment
        once no subscription needs it."""
        done = [c.segment for c in cursors if c.changed and c.unacked == 0]
        con.executemany(
            "UPDATE cursors SET unacked = ?, state = ? WHERE subscription = ? AND segment = ?",
            [(c.unacked, c.state(), subscription, c.segment) for c in cursors if c.changed],
        )
        if not done:
            return
        con.executemany(
            "DELETE FROM cursors WHERE subscription = ? AND segment = ?",
            [(subscription, s) for s in done],
        )
        con.executemany(  # by the cursors' key: one lookup per subscription
            "DELETE FROM segments WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM cursors "
            "WHERE subscription IN (SELECT name FROM subscriptions) AND segment = ?1)",
            [(s,) for s in done],
        )

    def _to_dead_letters(
        self,
        con: sqlite3.Connection,
        cursor: _Cursor,
        indexes: list[int],
        keys: list[str],
        reason: str,
    ) -> None:
        """Settle messages ``indexes`` and republish them on the dead-letter topic, with
        the reason, their delivery count and their message id (as Pub/Sub's backend
        does; here the dead letter also keeps the id itself)."""
        read = self._read(con, cursor, indexes, keys)
        for i in indexes:
            cursor.settle(i)
        self._store(
            con,
            self.dead_letter_topic,
            [
                Message(
                    m.data,
                    {
                        **m.attributes,
                        "dead_letter_reason": reason,
                        "delivery_attempts": str(m.delivery_attempt),
                        "original_message_id": m.message_id,
                    },
                    m.ordering_key,
                )
                for m in read
            ],
            [m.message_id for m in read],
        )

    def _answer(self, ack_ids: Sequence[str], ack: bool) -> int:
        """Ack (or, with ``ack`` false, give back) the deliveries still current; how many."""
        by_segment: dict[int, list[tuple[int, int]]] = {}
        for ack_id in ack_ids:
            segment, index, attempt = _parse_ack(ack_id)
            by_segment.setdefault(segment, []).append((index, attempt))
        counted = 0
        with self._write() as con:
            cursors = []
            for segment, items in sorted(by_segment.items()):
                cursor = self._cursor(con, self.subscription, segment)
                if cursor is None:
                    continue
                for index, attempt in items:
                    if cursor.current(index, attempt):
                        (cursor.settle if ack else cursor.release)(index)
                        counted += 1
                cursors.append(cursor)
            self._save(con, self.subscription, cursors)
        return counted

    def _cursor(self, con: sqlite3.Connection, subscription: str, segment: int) -> _Cursor | None:
        row = con.execute(
            "SELECT s.size, c.unacked, c.state FROM cursors AS c JOIN segments AS s "
            "ON s.id = c.segment WHERE c.subscription = ? AND c.segment = ?",
            [subscription, segment],
        ).fetchone()
        return None if row is None else _Cursor.load(segment, *row)

    @guarded("ack")
    def ack(self, ack_ids: Sequence[str]) -> int:
        return self._answer(ack_ids, ack=True) if ack_ids else 0

    @guarded("nack")
    def nack(self, ack_ids: Sequence[str]) -> None:
        if ack_ids:
            self._answer(ack_ids, ack=False)

    @guarded("dead letter")
    def dead_letter(self, received: Received, reason: str) -> None:
        segment, index, attempt = _parse_ack(received.ack_id)
        with self._write() as con:
            cursor = self._cursor(con, self.subscription, segment)
            if cursor is None or not cursor.current(index, attempt):
                return  # no longer this consumer's delivery: someone else has it
            (keys,) = con.execute("SELECT keys FROM segments WHERE id = ?", [segment]).fetchone()
            self._to_dead_letters(con, cursor, [index], orjson.loads(keys), reason)
            self._save(con, self.subscription, [cursor])

    @guarded("stats")
    def stats(self) -> BusStats:
        now = time.time()
        con = self._con()
        backlog = leased = 0
        oldest: float | None = None
        due = _ACKED  # the earliest end of a lease still running
        rows = con.execute(
            "SELECT s.size, c.unacked, c.state, s.publish_time FROM cursors AS c "
            "JOIN segments AS s ON s.id = c.segment WHERE c.subscription = ?",
            [self.subscription],
        )
        for size, unacked, state, publish_time in rows:
            backlog += unacked
            oldest = publish_time if oldest is None else min(oldest, publish_time)
            if state is not None:
                running = [
                    lease
                    for lease in _Cursor.load(0, size, unacked, state).leases
                    if now < lease < _ACKED
                ]
                if running:
                    leased += len(running)
                    due = min(due, min(running))
        (dead,) = con.execute(
            "SELECT coalesce(sum(unacked), 0) FROM cursors WHERE subscription = ?",
            [self.dead_letter_subscription],
        ).fetchone()
        return BusStats(
            backlog,
            leased,
            None if oldest is None else now - oldest,
            dead,
            None if due == _ACKED else due - now,
        )

    @guarded("reading dead letters")
    def dead_letters(self, limit: int = 100) -> list[Received]:
        """Peek at the dead-letter subscription without leasing (for status and tests)."""
        con = self._con()
        found: list[Received] = []
        walk = self._walk(con, self.dead_letter_subscription)
        for cursor, keys in walk:
            unsettled = [i for i in range(cursor.size) if cursor.leases[i] != _ACKED]
            found += self._read(con, cursor, unsettled[: limit - len(found)], keys)
            if len(found) >= limit:
                break
        walk.close()
        return found


def _parse_ack(ack_id: str) -> tuple[int, int, int]:
    try:
        segment, index, attempt = ack_id.split(":")
        return int(segment), int(index), int(attempt)
    except ValueError:
        raise BusError(f"not an ack id of this bus: {ack_id!r}") from None
