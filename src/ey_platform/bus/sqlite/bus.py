""":class:`SQLiteBus`, the embedded :class:`~ey_platform.bus.base.Bus`: each call is
one transaction on the bus file, made of the parts of this package."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from ey_platform.bus.base import BusStats, Message, Received
from ey_platform.bus.sqlite import inspection, leasing, schema, segments
from ey_platform.bus.sqlite.connection import Access, Connections, Sync
from ey_platform.errors import BusError
from ey_platform.sqlite_files import guarded


class SQLiteBus:
    """Topic ``topic``, subscription ``subscription``, dead letters to ``dead_letter_topic``
    (kept on the subscription ``<dead_letter_topic>-sub``). Has every ability of
    :mod:`ey_platform.bus.base`: setup, stats and inspection.

    Each thread gets its own connection; :meth:`close` closes every one of them, so
    call it once the threads that used the bus have ended. Opened with
    :meth:`open_read_only`, only :meth:`stats` and :meth:`dead_letters` work."""

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
        access: Access = Access.READ_WRITE,
    ) -> None:
        self.path = path
        self.topic = topic
        self.subscription = subscription
        self.dead_letter_topic = dead_letter_topic
        self.dead_letter_subscription = f"{dead_letter_topic}-sub"
        self.ack_deadline = ack_deadline
        self.max_delivery_attempts = max_delivery_attempts
        self._files = Connections(path, sync=sync, busy_timeout=busy_timeout, access=access)

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
            path,
            topic,
            subscription,
            dead_letter_topic,
            busy_timeout=busy_timeout,
            access=Access.READ_ONLY,
        )
        try:
            found = schema.check_format(bus._files.get(), path)
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

    def _failed(self, op: str, exc: sqlite3.Error | OSError) -> BusError:
        return self._files.failed(op, exc)

    def close(self) -> None:
        """Close every connection the bus opened, in any thread."""
        self._files.close()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction on this thread's connection."""
        return self._files.write()

    def _subscriptions(self, con: sqlite3.Connection, topic: str) -> list[str]:
        return schema.subscriptions_of(con, topic, self._files.subscriptions_by_topic(), self.path)

    # -- setup ----------------------------------------------------------------------

    @guarded("setup")
    def setup(self) -> None:
        """Create the tables and subscriptions if missing. A failed setup leaves no
        connection open."""
        if self._files.access is Access.READ_ONLY:
            raise BusError(f"bus file {self.path} is open read-only: setup cannot run")
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        con = self._files.get()
        schema.check_format(con, self.path)
        schema.create_tables(con)
        with self._write() as con:
            schema.add_subscriptions(
                con,
                self.topic,
                self.subscription,
                self.dead_letter_topic,
                self.dead_letter_subscription,
                ack_deadline=self.ack_deadline,
                max_delivery_attempts=self.max_delivery_attempts,
            )

    # -- the Bus --------------------------------------------------------------------

    @guarded("publish")
    def publish(self, messages: Sequence[Message]) -> list[str]:
        if not messages:
            return []
        with self._write() as con:
            return segments.append(con, self.topic, self._subscriptions(con, self.topic), messages)

    @guarded("pull")
    def pull(self, max_messages: int) -> list[Received]:
        if max_messages < 1:
            raise BusError(
                f"pull from {self.subscription}: max_messages must be 1 or more, not {max_messages}"
            )
        now = time.time()
        with self._write() as con:
            taken, spent = leasing.lease(
                con,
                self.subscription,
                max_messages,
                now=now,
                until=now + self.ack_deadline,
                max_attempts=self.max_delivery_attempts,
            )
            for picked in spent:
                self._forward(con, picked, "max delivery attempts exceeded")
            received = [m for p in taken for m in segments.read(con, *p)]
            touched = {p.cursor.segment: p.cursor for p in [*taken, *spent]}
            segments.save(con, self.subscription, list(touched.values()))
        return received

    def _forward(self, con: sqlite3.Connection, picked: leasing.Picked, reason: str) -> None:
        dead_letter_subscriptions = self._subscriptions(con, self.dead_letter_topic)
        leasing.forward(con, picked, reason, self.dead_letter_topic, dead_letter_subscriptions)

    @guarded("ack")
    def ack(self, ack_ids: Sequence[str]) -> int:
        return self._answer(ack_ids, leasing.ACK) if ack_ids else 0

    @guarded("nack")
    def nack(self, ack_ids: Sequence[str]) -> None:
        if ack_ids:
            self._answer(ack_ids, leasing.NACK)

    def _answer(self, ack_ids: Sequence[str], how: leasing.Answer) -> int:
        deliveries = leasing.by_segment(ack_ids)
        with self._write() as con:
            return leasing.answer(con, self.subscription, deliveries, how)

    @guarded("dead letter")
    def dead_letter(self, received: Received, reason: str) -> None:
        segment, index, attempt = segments.parse_ack(received.ack_id)
        with self._write() as con:
            cursor = segments.cursor_at(con, self.subscription, segment)
            if cursor is None or not cursor.current(index, attempt):
                return  # no longer this consumer's delivery: someone else has it
            keys = segments.keys_of(con, segment)
            self._forward(con, leasing.Picked(cursor, [index], keys), reason)
            segments.save(con, self.subscription, [cursor])

    # -- inspection -----------------------------------------------------------------

    @guarded("stats")
    def stats(self) -> BusStats:
        now = time.time()
        con = self._files.get()
        return inspection.stats(con, self.subscription, self.dead_letter_subscription, now)

    @guarded("reading dead letters")
    def dead_letters(self, limit: int = 100) -> list[Received]:
        """Peek at the dead-letter subscription without leasing (for status and tests)."""
        return inspection.peek(self._files.get(), self.dead_letter_subscription, limit)
