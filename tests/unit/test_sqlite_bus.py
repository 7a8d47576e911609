"""What only the embedded bus has: its segment storage, on a real SQLite file. (The
behaviour it shares with Pub/Sub is in tests/contract/test_bus.py.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ey_platform.bus import sqlite as sqlite_bus
from ey_platform.bus.base import Message
from ey_platform.bus.sqlite import FORMAT_VERSION, SQLiteBus
from ey_platform.errors import BusError


def _bus(tmp_path: Path, **kwargs: object) -> SQLiteBus:
    bus = SQLiteBus(tmp_path / "bus.sqlite3", **kwargs)  # type: ignore[arg-type]
    bus.setup()
    return bus


def _rows(bus: SQLiteBus, table: str) -> int:
    with sqlite3.connect(bus.path) as con:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_large_publish_is_split_and_ids_grow_in_publish_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_bus, "SEGMENT_MAX", 3)
    bus = _bus(tmp_path)
    ids = bus.publish([Message(str(i).encode(), {"i": str(i)}, "") for i in range(7)])
    ids += bus.publish([Message(b"7")])
    assert _rows(bus, "segments") == 4  # 3 + 3 + 1, then 1
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
    got = bus.pull(100)
    assert [m.data for m in got] == [str(i).encode() for i in range(8)]
    assert [m.message_id for m in got] == ids
    assert got[4].attributes == {"i": "4"}


def test_finished_segments_leave_the_file(tmp_path: Path) -> None:
    bus = _bus(tmp_path)
    bus.publish([Message(b"a"), Message(b"b")])
    bus.publish([Message(b"c")])
    first, second, third = bus.pull(10)
    assert bus.ack([first.ack_id]) == 1
    assert (_rows(bus, "segments"), _rows(bus, "cursors")) == (2, 2)  # b is still out
    assert bus.ack([second.ack_id, third.ack_id]) == 2
    assert (_rows(bus, "segments"), _rows(bus, "cursors")) == (0, 0)


def test_stats_count_what_is_leased_and_what_is_waiting(tmp_path: Path) -> None:
    bus = _bus(tmp_path)
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


def test_an_ack_id_from_elsewhere_is_refused(tmp_path: Path) -> None:
    bus = _bus(tmp_path)
    with pytest.raises(BusError, match="not an ack id of this bus: 'projects/x/ack/1'"):
        bus.ack(["projects/x/ack/1"])


def test_acks_of_unknown_or_finished_deliveries_count_nothing(tmp_path: Path) -> None:
    bus = _bus(tmp_path)
    bus.publish([Message(b"a")])
    (a,) = bus.pull(1)
    assert bus.ack([a.ack_id]) == 1
    assert bus.ack([a.ack_id, "999:0:1", "1:7:1"]) == 0


def test_a_bus_file_of_the_older_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE deliveries (id INTEGER PRIMARY KEY, data BLOB)")
        con.execute("INSERT INTO deliveries (data) VALUES (x'00')")
    with pytest.raises(BusError, match=f"{path} holds a bus of an older format"):
        SQLiteBus(path).setup()
    with sqlite3.connect(path) as con:  # and nothing of it was touched
        assert con.execute("SELECT count(*) FROM deliveries").fetchone() == (1,)


def test_a_bus_file_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    bus = SQLiteBus(path)
    bus.setup()
    bus.publish([Message(b"kept")])
    bus.close()
    with sqlite3.connect(path) as con:
        con.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
    with pytest.raises(BusError, match=f"{path} holds a bus of format {FORMAT_VERSION + 1}"):
        SQLiteBus(path).setup()
    with sqlite3.connect(path) as con:  # and it was left as it was
        assert con.execute("PRAGMA user_version").fetchone() == (FORMAT_VERSION + 1,)
        assert con.execute("SELECT count(*) FROM segments").fetchone() == (1,)


def test_a_pull_of_no_messages_is_refused(tmp_path: Path) -> None:
    bus = _bus(tmp_path)
    bus.publish([Message(b"a")])
    with pytest.raises(BusError, match="max_messages must be 1 or more, not 0"):
        bus.pull(0)
    assert bus.stats().leased == 0


def test_a_finished_segment_is_freed_without_writing_it_over(tmp_path: Path) -> None:
    bus = _bus(tmp_path)
    payload = b"x" * 2_000
    bus.publish([Message(payload, {}, str(i)) for i in range(1_000)])  # one 2 MB segment
    with sqlite3.connect(bus.path) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = bus.path.with_name(bus.path.name + "-wal")
    assert bus.ack([m.ack_id for m in bus.pull(1_000)]) == 1_000
    assert _rows(bus, "segments") == 0
    # the segment's pages go back to the free list as they are: SQLite built with
    # SECURE_DELETE would write 2 MB of zeros through the WAL
    assert wal.stat().st_size < 200_000
