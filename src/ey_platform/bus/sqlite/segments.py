"""How the embedded bus stores messages: *segments*, and the *cursors* over them.

Each publish call is one immutable row of ``segments`` per :data:`SEGMENT_MAX`
messages (their ordering keys, attributes and payloads, end to end), and each
subscription keeps one row of ``cursors`` per segment it has not finished, with every
message's delivery attempts and lease end (an acked message's lease never ends). A
pull, an ack or a publish therefore writes one or two rows, however many messages it
carries.

A message id is ``segment * SEGMENT_MAX + index`` (numeric and growing in publish
order) unless the segment stores its own ids (dead letters keep the original ones); an
ack id is ``segment:index:attempt``.
"""

from __future__ import annotations

import math
import sqlite3
import time
from array import array
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from ey_platform.bus.base import Message, Received
from ey_platform.errors import BusError

ACKED = math.inf  # the lease end of an acked message: it is never due again
SEGMENT_MAX = 100_000


@dataclass
class Cursor:
    """A subscription's view of one segment: attempts and lease end per message."""

    segment: int
    size: int
    unacked: int
    attempts: array[int]
    leases: array[float]
    changed: bool = False
    fresh: bool = False  # no message delivered yet

    @classmethod
    def load(cls, segment: int, size: int, unacked: int, state: bytes | None) -> Cursor:
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
            and self.leases[index] != ACKED
        )

    def settle(self, index: int) -> None:
        """Done with message ``index``: acked, or moved to the dead letters."""
        self.leases[index] = ACKED
        self.unacked -= 1
        self.changed = True

    def release(self, index: int) -> None:
        """Give message ``index`` back: due again at once."""
        self.leases[index] = 0.0
        self.changed = True


def append(
    con: sqlite3.Connection, topic: str, subscriptions: list[str], messages: Sequence[Message]
) -> list[str]:
    """Publish ``messages`` on ``topic`` in segments of at most :data:`SEGMENT_MAX`;
    their message ids."""
    return [
        mid
        for start in range(0, len(messages), SEGMENT_MAX)
        for mid in store(con, topic, subscriptions, messages[start : start + SEGMENT_MAX])
    ]


def store(
    con: sqlite3.Connection,
    topic: str,
    subscriptions: list[str],
    messages: Sequence[Message],
    message_ids: list[str] | None = None,
) -> list[str]:
    """One segment of ``messages`` on ``topic``, and a cursor for each subscription."""
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


def walk(
    con: sqlite3.Connection, subscription: str
) -> Generator[tuple[Cursor, list[str]], None, None]:
    """The subscription's unfinished segments in publish order, lazily, with the
    ordering key of each message."""
    rows = con.execute(
        "SELECT c.segment, s.size, c.unacked, c.state, s.keys FROM cursors AS c "
        "JOIN segments AS s ON s.id = c.segment WHERE c.subscription = ? ORDER BY c.segment",
        [subscription],
    )
    try:
        for segment, size, unacked, state, keys in rows:
            yield Cursor.load(segment, size, unacked, state), orjson.loads(keys)
    finally:
        rows.close()


def read(
    con: sqlite3.Connection, cursor: Cursor, indexes: list[int], keys: list[str]
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
    for i in indexes:  # the hot loop of a pull: positional and flat
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


def keys_of(con: sqlite3.Connection, segment: int) -> list[str]:
    """The ordering key of each message of ``segment``."""
    (keys,) = con.execute("SELECT keys FROM segments WHERE id = ?", [segment]).fetchone()
    result: list[str] = orjson.loads(keys)
    return result


def cursor_at(con: sqlite3.Connection, subscription: str, segment: int) -> Cursor | None:
    """The subscription's cursor on ``segment``; None once it is finished (or unknown)."""
    row = con.execute(
        "SELECT s.size, c.unacked, c.state FROM cursors AS c JOIN segments AS s "
        "ON s.id = c.segment WHERE c.subscription = ? AND c.segment = ?",
        [subscription, segment],
    ).fetchone()
    return None if row is None else Cursor.load(segment, *row)


def save(con: sqlite3.Connection, subscription: str, cursors: list[Cursor]) -> None:
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


def parse_ack(ack_id: str) -> tuple[int, int, int]:
    """``(segment, index, attempt)`` of an ack id of this bus."""
    try:
        segment, index, attempt = ack_id.split(":")
        return int(segment), int(index), int(attempt)
    except ValueError:
        raise BusError(f"not an ack id of this bus: {ack_id!r}") from None
