"""Leases on the embedded bus: which messages a pull delivers, what an ack or a nack
does to a delivery, and how a message moves to the dead letters."""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ey_platform.bus.base import Message, Received
from ey_platform.bus.sqlite import segments
from ey_platform.bus.sqlite.segments import ACKED, Cursor


class Picked(NamedTuple):
    """Messages ``indexes`` of the segment under ``cursor``."""

    cursor: Cursor
    indexes: list[int]
    keys: list[str]


class Leases(NamedTuple):
    """What a pull took: the messages it leased, and those out of delivery attempts."""

    taken: list[Picked]
    spent: list[Picked]


def lease(
    con: sqlite3.Connection,
    subscription: str,
    wanted: int,
    *,
    now: float,
    until: float,
    max_attempts: int,
) -> Leases:
    """Lease up to ``wanted`` deliverable messages of ``subscription`` until ``until``,
    in publish order, and find the due ones that have no delivery attempt left. Marks
    the leases in the cursors; saving them is the caller's."""
    taken: list[Picked] = []
    spent: list[Picked] = []
    # Keys with a message leased now, seen so far in publish order: a later message of
    # such a key waits for it.
    held: set[str] = set()
    walk = segments.walk(con, subscription)
    for cursor, keys in walk:
        if wanted == 0:
            break
        dead: list[int] = []
        if cursor.fresh and not held and max_attempts > 0:
            mine = _lease_fresh(cursor, wanted, until)
        else:
            mine, dead = _lease_due(cursor, keys, held, wanted, now, until, max_attempts)
        wanted -= len(mine)
        if mine:
            taken.append(Picked(cursor, mine, keys))
        if dead:
            spent.append(Picked(cursor, dead, keys))
    walk.close()
    return Leases(taken, spent)


def _lease_fresh(cursor: Cursor, wanted: int, until: float) -> list[int]:
    """A segment never delivered, with no key held: its first messages are due, in order."""
    mine = list(range(min(cursor.size, wanted)))
    cursor.attempts[: len(mine)] = array("I", [1]) * len(mine)
    cursor.leases[: len(mine)] = array("d", [until]) * len(mine)
    cursor.changed = True
    return mine


def _lease_due(
    cursor: Cursor,
    keys: list[str],
    held: set[str],
    wanted: int,
    now: float,
    until: float,
    max_attempts: int,
) -> tuple[list[int], list[int]]:
    """Lease the due messages of a segment whose key is not held, up to ``wanted``;
    adds to ``held`` the keys of messages leased before. Returns the leased ones and
    the due ones out of attempts."""
    attempts, leases = cursor.attempts, cursor.leases
    mine: list[int] = []
    dead: list[int] = []
    for i in range(cursor.size):
        lease_end = leases[i]
        if lease_end > now:
            if lease_end != ACKED and keys[i]:
                held.add(keys[i])
            continue
        if keys[i] and keys[i] in held:
            continue
        if attempts[i] >= max_attempts:
            dead.append(i)
            continue
        attempts[i] += 1
        leases[i] = until
        mine.append(i)
        if len(mine) == wanted:
            break
    if mine:
        cursor.changed = True
    return mine, dead


Answer = Callable[[Cursor, int], None]
ACK: Answer = Cursor.settle
NACK: Answer = Cursor.release


def by_segment(ack_ids: Sequence[str]) -> dict[int, list[tuple[int, int]]]:
    """``(index, attempt)`` of each ack id, by segment."""
    grouped: dict[int, list[tuple[int, int]]] = {}
    for ack_id in ack_ids:
        segment, index, attempt = segments.parse_ack(ack_id)
        grouped.setdefault(segment, []).append((index, attempt))
    return grouped


def answer(
    con: sqlite3.Connection,
    subscription: str,
    deliveries: dict[int, list[tuple[int, int]]],
    how: Answer,
) -> int:
    """Answer the deliveries still current (:data:`ACK` or :data:`NACK`); how many."""
    counted = 0
    cursors = []
    for segment, items in sorted(deliveries.items()):
        cursor = segments.cursor_at(con, subscription, segment)
        if cursor is None:
            continue
        for index, attempt in items:
            if cursor.current(index, attempt):
                how(cursor, index)
                counted += 1
        cursors.append(cursor)
    segments.save(con, subscription, cursors)
    return counted


def forward(
    con: sqlite3.Connection,
    picked: Picked,
    reason: str,
    dead_letter_topic: str,
    dead_letter_subscriptions: list[str],
) -> None:
    """Settle the picked messages and republish them on the dead-letter topic, with the
    reason, their delivery count and their message id (as Pub/Sub's backend does; here
    the dead letter also keeps the id itself)."""
    read = segments.read(con, picked.cursor, picked.indexes, picked.keys)
    for i in picked.indexes:
        picked.cursor.settle(i)
    segments.store(
        con,
        dead_letter_topic,
        dead_letter_subscriptions,
        [_dead_letter(m, reason) for m in read],
        [m.message_id for m in read],
    )


def _dead_letter(received: Received, reason: str) -> Message:
    return Message(
        received.data,
        {
            **received.attributes,
            "dead_letter_reason": reason,
            "delivery_attempts": str(received.delivery_attempt),
            "original_message_id": received.message_id,
        },
        received.ordering_key,
    )
