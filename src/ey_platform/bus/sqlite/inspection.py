"""What can be read of the embedded bus without changing it: the figures of a
subscription, and its dead letters. All a bus opened read-only can do."""

from __future__ import annotations

import sqlite3

from ey_platform.bus.base import BusStats, Received
from ey_platform.bus.sqlite import segments
from ey_platform.bus.sqlite.segments import ACKED, Cursor


def stats(
    con: sqlite3.Connection, subscription: str, dead_letter_subscription: str, now: float
) -> BusStats:
    """Backlog, leases running at ``now``, age of the oldest unacked message, and dead
    letters not yet settled."""
    backlog = leased = 0
    oldest: float | None = None
    due = ACKED  # the earliest end of a lease still running
    rows = con.execute(
        "SELECT s.size, c.unacked, c.state, s.publish_time FROM cursors AS c "
        "JOIN segments AS s ON s.id = c.segment WHERE c.subscription = ?",
        [subscription],
    )
    for size, unacked, state, publish_time in rows:
        backlog += unacked
        oldest = publish_time if oldest is None else min(oldest, publish_time)
        if state is not None:
            running = [
                lease
                for lease in Cursor.load(0, size, unacked, state).leases
                if now < lease < ACKED
            ]
            if running:
                leased += len(running)
                due = min(due, min(running))
    (dead,) = con.execute(
        "SELECT coalesce(sum(unacked), 0) FROM cursors WHERE subscription = ?",
        [dead_letter_subscription],
    ).fetchone()
    return BusStats(
        backlog,
        leased,
        None if oldest is None else now - oldest,
        dead,
        None if due == ACKED else due - now,
    )


def peek(con: sqlite3.Connection, subscription: str, limit: int) -> list[Received]:
    """Up to ``limit`` unsettled messages of ``subscription``, without leasing them."""
    found: list[Received] = []
    walk = segments.walk(con, subscription)
    for cursor, keys in walk:
        unsettled = [i for i in range(cursor.size) if cursor.leases[i] != ACKED]
        found += segments.read(con, cursor, unsettled[: limit - len(found)], keys)
        if len(found) >= limit:
            break
    walk.close()
    return found
