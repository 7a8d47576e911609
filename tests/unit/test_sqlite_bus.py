"""What only the embedded bus has: its segment storage, on a real SQLite file. (The
behaviour it shares with Pub/Sub is in tests/contract/test_bus.py.)"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from ey_platform.bus.base import Message
from ey_platform.bus.sqlite import FORMAT_VERSION, SQLiteBus
from ey_platform.bus.sqlite import segments as sqlite_bus
from ey_platform.errors import BusError

NewBus = Callable[..., SQLiteBus]


@pytest.fixture
def new_bus(tmp_path: Path) -> Iterator[NewBus]:
    """Set-up buses on tmp_path/bus.sqlite3, closed after the test."""
    made: list[SQLiteBus] = []

    def make(**kwargs: object) -> SQLiteBus:
        bus = SQLiteBus(tmp_path / "bus.sqlite3", **kwargs)  # type: ignore[arg-type]
        made.append(bus)
        bus.setup()
        return bus

    yield make
    for bus in made:
        bus.close()


@contextmanager
def _sql(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection to ``path``, committed and closed at the end."""
    with closing(sqlite3.connect(path)) as con, con:
        yield con


def _rows(bus: SQLiteBus, table: str) -> int:
    with _sql(bus.path) as con:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_large_publish_is_split_and_ids_grow_in_publish_order(
    new_bus: NewBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_bus, "SEGMENT_MAX", 3)
    bus = new_bus()
    ids = bus.publish([Message(str(i).encode(), {"i": str(i)}, "") for i in range(7)])
    ids += bus.publish([Message(b"7")])
    assert _rows(bus, "segments") == 4  # 3 + 3 + 1, then 1
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
    got = bus.pull(100)
    assert [m.data for m in got] == [str(i).encode() for i in range(8)]
    assert [m.message_id for m in got] == ids
    assert got[4].attributes == {"i": "4"}


def test_finished_segments_leave_the_file(new_bus: NewBus) -> None:
    bus = new_bus()
    bus.publish([Message(b"a"), Message(b"b")])
    bus.publish([Message(b"c")])
    first, second, third = bus.pull(10)
    assert bus.ack([first.ack_id]) == 1
    assert (_rows(bus, "segments"), _rows(bus, "cursors")) == (2, 2)  # b is still out
    assert bus.ack([second.ack_id, third.ack_id]) == 2
    assert (_rows(bus, "segments"), _rows(bus, "cursors")) == (0, 0)


def test_stats_count_what_is_leased_and_what_is_waiting(new_bus: NewBus) -> None:
    bus = new_bus()
    bus.publish([Message(b"a"), Message(b"b"), Message(b"c")])
    (a,) = bus.pull(1)
    stats = bus.stats()
    assert (stats.backlog, stats.leased, stats.dead_letters) == (3, 1, 0)
    bus.dead_letter(a, "bad")
    stats = bus.stats()
    assert (stats.backlog, stats.leased, stats.dead_letters) == (2, 0, 1)
    (dead,) = bus.dead_letters()
    assert dead.message_id == a.message_id  # a dead letter keeps its id
    assert dead.attributes["dead_letter_reason"] == "bad"


def test_an_ack_id_from_elsewhere_is_refused(new_bus: NewBus) -> None:
    bus = new_bus()
    with pytest.raises(BusError, match="not an ack id of this bus: 'projects/x/ack/1'"):
        bus.ack(["projects/x/ack/1"])


def test_acks_of_unknown_or_finished_deliveries_count_nothing(
    new_bus: NewBus,
) -> None:
    bus = new_bus()
    bus.publish([Message(b"a")])
    (a,) = bus.pull(1)
    assert bus.ack([a.ack_id]) == 1
    assert bus.ack([a.ack_id, "999:0:1", "1:7:1"]) == 0


def test_a_bus_file_of_the_older_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    with _sql(path) as con:
        con.execute("CREATE TABLE deliveries (id INTEGER PRIMARY KEY, data BLOB)")
        con.execute("INSERT INTO deliveries (data) VALUES (x'00')")
    bus = SQLiteBus(path)
    with pytest.raises(BusError, match=f"{path} holds a bus of an older format"):
        bus.setup()
    bus.close()
    with _sql(path) as con:  # and nothing of it was touched
        assert con.execute("SELECT count(*) FROM deliveries").fetchone() == (1,)


def test_a_bus_file_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    bus = SQLiteBus(path)
    bus.setup()
    bus.publish([Message(b"kept")])
    bus.close()
    with _sql(path) as con:
        con.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
    bus = SQLiteBus(path)
    with pytest.raises(BusError, match=f"{path} holds a bus of format {FORMAT_VERSION + 1}"):
        bus.setup()
    bus.close()
    with _sql(path) as con:  # and it was left as it was
        assert con.execute("PRAGMA user_version").fetchone() == (FORMAT_VERSION + 1,)
        assert con.execute("SELECT count(*) FROM segments").fetchone() == (1,)


def test_a_pull_of_no_messages_is_refused(new_bus: NewBus) -> None:
    bus = new_bus()
    bus.publish([Message(b"a")])
    with pytest.raises(BusError, match="max_messages must be 1 or more, not 0"):
        bus.pull(0)
    assert bus.stats().leased == 0


def test_a_finished_segment_is_freed_without_writing_it_over(
    new_bus: NewBus,
) -> None:
    bus = new_bus()
    payload = b"x" * 2_000
    bus.publish([Message(payload, {}, str(i)) for i in range(1_000)])  # one 2 MB segment
    with _sql(bus.path) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = bus.path.with_name(bus.path.name + "-wal")
    assert bus.ack([m.ack_id for m in bus.pull(1_000)]) == 1_000
    assert _rows(bus, "segments") == 0
    # the segment's pages go back to the free list as they are: SQLite built with
    # SECURE_DELETE would write 2 MB of zeros through the WAL
    assert wal.stat().st_size < 200_000


def test_stats_tell_when_the_first_lease_runs_out(new_bus: NewBus) -> None:
    bus = new_bus(ack_deadline=30.0)
    bus.publish([Message(b"a"), Message(b"b"), Message(b"c")])
    assert bus.stats().next_lease_due_seconds is None  # nothing leased
    before = time.time()
    (a,) = bus.pull(1)
    first = bus.stats().next_lease_due_seconds
    assert first is not None and 29.0 < first <= 30.0 + (time.time() - before)
    time.sleep(0.2)
    (b,) = bus.pull(1)  # due later than a
    second = bus.stats().next_lease_due_seconds
    assert second is not None and second < first
    bus.ack([a.ack_id])  # now b is the first one due
    third = bus.stats().next_lease_due_seconds
    assert third is not None and third > second
    bus.nack([b.ack_id])  # given back: due now, leased to nobody
    stats = bus.stats()
    assert (stats.leased, stats.next_lease_due_seconds) == (0, None)


def test_a_lease_that_ran_out_is_not_counted_as_due_later(new_bus: NewBus) -> None:
    bus = new_bus(ack_deadline=0.05)
    bus.publish([Message(b"a")])
    assert len(bus.pull(1)) == 1
    time.sleep(0.1)
    stats = bus.stats()
    assert (stats.backlog, stats.leased, stats.next_lease_due_seconds) == (1, 0, None)
