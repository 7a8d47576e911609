"""The bus and poller state files: damaged ones give one clear error at every entry
point, the read-only openers never create or write a file, and a bus closes the
connections of every thread. (Read-only and full file systems, and the CLI, are in
tests/integration/test_sqlite_faults.py.)"""

from __future__ import annotations

import gc
import random
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ey_platform.bus.base import Message, Received
from ey_platform.bus.sqlite import FORMAT_VERSION, SQLiteBus
from ey_platform.errors import BusError, StateError
from ey_platform.state.base import PollResult
from ey_platform.state.sqlite import SQLitePollerState


def valid_bus(path: Path, messages: int = 3_000) -> None:
    """A bus file with messages in several segments, some leased, then closed."""
    bus = SQLiteBus(path)
    bus.setup()
    rng = random.Random(1)
    for start in range(0, messages, 1_000):
        bus.publish(
            [Message(rng.randbytes(300), {"i": str(i)}) for i in range(start, start + 1_000)]
        )
    bus.pull(10)
    bus.close()


def valid_state(path: Path, carts: int = 10_000, polls: int = 300) -> None:
    state = SQLitePollerState(path)
    state.save((i, f"{i:064x}", 1) for i in range(carts))
    for i in range(polls):
        state.record_poll(PollResult(f"poll-{i:05d}", float(i), "succeeded", float(i) + 1))
    state.close()


def _cut(path: Path, size: int) -> None:
    with path.open("r+b") as f:
        f.truncate(size)


def _random_bytes(path: Path, make: Callable[[Path], None]) -> None:
    path.write_bytes(random.Random(7).randbytes(64 * 1024))


def _text(path: Path, make: Callable[[Path], None]) -> None:
    path.write_text("cart_id,total\n1,20.5\n" * 200)


def _cut_in_half(path: Path, make: Callable[[Path], None]) -> None:
    make(path)
    _cut(path, path.stat().st_size // 2)


def _cut_in_header(path: Path, make: Callable[[Path], None]) -> None:
    make(path)
    _cut(path, 50)  # of its 100 bytes


NOT_A_DATABASE = "is not a SQLite database"
MALFORMED = "is damaged (database disk image is malformed)"
# how a file is damaged, and what the error says of it
DAMAGES = {
    "random-bytes": (_random_bytes, NOT_A_DATABASE),
    "text": (_text, NOT_A_DATABASE),
    "cut-in-half": (_cut_in_half, MALFORMED),
    "cut-in-header": (_cut_in_header, MALFORMED),
}


def _damaged(tmp_path: Path, kind: str, make: Callable[[Path], None]) -> tuple[Path, str, bytes]:
    path = tmp_path / "data" / "file.sqlite3"
    path.parent.mkdir()
    damage, said = DAMAGES[kind]
    damage(path, make)
    return path, said, path.read_bytes()


def _one_line(exc: pytest.ExceptionInfo[Exception]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def _open_connections(path: Path) -> int:
    """How many of this process's file descriptors are on ``path`` (one per connection)."""
    fds = Path("/proc/self/fd")
    found = 0
    for fd in fds.iterdir():
        try:
            found += fd.readlink() == path.resolve()
        except OSError:
            continue  # closed meanwhile (the one iterdir used)
    return found


RECEIVED = Received("1:0:1", "100000", b"{}", {}, "", datetime.now(UTC), 1)

BUS_CALLS: dict[str, Callable[[SQLiteBus], object]] = {
    "setup": lambda bus: bus.setup(),
    "publish": lambda bus: bus.publish([Message(b"x")]),
    "pull": lambda bus: bus.pull(100),
    "ack": lambda bus: bus.ack(["1:0:1"]),
    "nack": lambda bus: bus.nack(["1:0:1"]),
    "dead_letter": lambda bus: bus.dead_letter(RECEIVED, "bad"),
    "stats": lambda bus: bus.stats(),
    "dead_letters": lambda bus: bus.dead_letters(),
}


# -- damaged files --------------------------------------------------------------------


@pytest.mark.parametrize("call", BUS_CALLS)
@pytest.mark.parametrize("kind", DAMAGES)
def test_a_damaged_bus_file_is_one_bus_error_at_every_entry_point(
    tmp_path: Path, kind: str, call: str
) -> None:
    path, said, before = _damaged(tmp_path, kind, valid_bus)
    bus = SQLiteBus(path)
    with pytest.raises(BusError) as exc:
        BUS_CALLS[call](bus)
    bus.close()
    text = _one_line(exc)
    assert text.startswith(f"bus file {path} {said}: move it away and the bus starts empty")
    assert "the messages it held are lost" in text
    assert path.read_bytes() == before  # left for a person to look at


@pytest.mark.parametrize("kind", DAMAGES)
def test_a_damaged_bus_file_is_one_bus_error_when_opened_read_only(
    tmp_path: Path, kind: str
) -> None:
    path, said, before = _damaged(tmp_path, kind, valid_bus)
    with pytest.raises(BusError, match="move it away and the bus starts empty") as exc:
        SQLiteBus.open_read_only(path)
    assert _one_line(exc).startswith(f"bus file {path} {said}")
    assert path.read_bytes() == before
    assert _open_connections(path) == 0


def test_a_bus_damaged_past_its_tables_sets_up_and_fails_at_the_pull(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    bus = SQLiteBus(path)
    bus.setup()
    bus.publish([Message(random.Random(3).randbytes(1_000)) for _ in range(1_000)])
    bus.close()
    size = path.stat().st_size
    with path.open("r+b") as f:  # the messages' pages, not the tables' first pages
        f.seek(size // 2)
        f.write(b"\xff" * (size - size // 2))
    bus = SQLiteBus(path)
    bus.setup()
    assert bus.stats().backlog == 1_000
    with pytest.raises(BusError, match=f"bus file {path} is damaged") as exc:
        bus.pull(1_000)
    _one_line(exc)
    bus.close()


def test_a_failed_setup_leaves_no_connection_open(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    valid_bus(path)
    _cut(path, path.stat().st_size // 2)
    with pytest.raises(BusError):
        SQLiteBus(path).setup()
    assert _open_connections(path) == 0


@pytest.mark.parametrize("kind", DAMAGES)
def test_a_damaged_poller_state_is_one_state_error_when_opened(tmp_path: Path, kind: str) -> None:
    path, said, before = _damaged(tmp_path, kind, valid_state)
    with pytest.raises(StateError) as exc:
        SQLitePollerState(path)
    text = _one_line(exc)
    assert text == (
        f"poller state {path} {said}: move it away and the next poll rebuilds it from "
        "the warehouse (only the poll history is lost)"
    )
    assert path.read_bytes() == before
    assert _open_connections(path) == 0
    with pytest.raises(StateError, match="move it away"):
        SQLitePollerState.open_read_only(path)


STATE_CALLS: dict[str, Callable[[SQLitePollerState], object]] = {
    "load": lambda state: state.load(),
    "save": lambda state: state.save([(5, "x" * 64, 2)]),
    "record_poll": lambda state: state.record_poll(PollResult("poll-z", 9e9)),
    "last_poll": lambda state: state.last_poll(),
}


@pytest.mark.parametrize("call", STATE_CALLS)
def test_a_poller_state_cut_after_it_opened_is_one_state_error(tmp_path: Path, call: str) -> None:
    path = tmp_path / "poller.sqlite3"
    valid_state(path)
    state = SQLitePollerState(path)  # opens fine: the first pages are whole
    _cut(path, path.stat().st_size // 2)
    with pytest.raises(StateError, match=f"poller state {path} is damaged") as exc:
        STATE_CALLS[call](state)
    _one_line(exc)
    state.close()


# -- read-only openers ----------------------------------------------------------------


def test_a_missing_bus_opened_read_only_is_none_and_nothing_is_created(tmp_path: Path) -> None:
    path = tmp_path / "data" / "bus.sqlite3"
    assert SQLiteBus.open_read_only(path) is None
    assert not path.parent.exists()


def test_an_empty_bus_file_opened_read_only_is_none(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    path.touch()  # a setup that never ran
    assert SQLiteBus.open_read_only(path) is None
    assert path.read_bytes() == b""


def _header(path: Path) -> tuple[int, int]:
    """The file's journal mode bytes (2 and 2: WAL) and user_version, from its header."""
    head = path.read_bytes()[:100]
    return head[18] * 10 + head[19], int.from_bytes(head[60:64], "big")


def test_a_bus_opened_read_only_reads_and_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    valid_bus(path)
    before = path.read_bytes()
    assert _header(path) == (22, FORMAT_VERSION)
    bus = SQLiteBus.open_read_only(path)
    assert bus is not None
    stats = bus.stats()
    assert (stats.backlog, stats.leased, stats.dead_letters) == (3_000, 10, 0)
    assert stats.next_lease_due_seconds is not None and 0 < stats.next_lease_due_seconds <= 60
    assert bus.dead_letters() == []
    for call in ("setup", "publish", "pull", "ack", "nack", "dead_letter"):
        with pytest.raises(BusError, match=f"bus file {path} is open read-only"):
            BUS_CALLS[call](bus)
    bus.close()
    assert path.read_bytes() == before
    assert _open_connections(path) == 0


def test_a_bus_opened_read_only_sees_what_a_writer_commits(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    writer = SQLiteBus(path)
    writer.setup()
    writer.publish([Message(b"a"), Message(b"b")])
    reader = SQLiteBus.open_read_only(path)
    assert reader is not None
    assert reader.stats().backlog == 2
    writer.publish([Message(b"c")])
    assert reader.stats().backlog == 3
    with writer._write() as con:  # a write in progress is not seen, and does not block
        con.execute("DELETE FROM cursors")
        assert reader.stats().backlog == 3
    assert reader.stats().backlog == 0
    reader.close()
    writer.close()


def test_a_bus_of_an_older_format_is_refused_read_only(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    with closing(sqlite3.connect(path)) as con, con:
        con.execute("CREATE TABLE deliveries (id INTEGER PRIMARY KEY, data BLOB)")
    with pytest.raises(BusError, match="holds a bus of an older format"):
        SQLiteBus.open_read_only(path)
    assert _open_connections(path) == 0


def test_a_missing_poller_state_opened_read_only_is_none(tmp_path: Path) -> None:
    path = tmp_path / "stream" / "poller.sqlite3"
    assert SQLitePollerState.open_read_only(path) is None
    assert not path.parent.exists()


def test_a_poller_state_opened_read_only_reads_and_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "poller.sqlite3"
    valid_state(path, carts=3, polls=2)
    before = path.read_bytes()
    state = SQLitePollerState.open_read_only(path)
    assert state is not None
    assert sorted(state.load()) == [0, 1, 2]
    last = state.last_poll()
    assert last is not None and last.poll_id == "poll-00001"
    with pytest.raises(StateError, match=f"poller state {path} is open read-only: save"):
        state.save([(9, "x", 1)])
    with pytest.raises(StateError, match="is open read-only: record poll"):
        state.record_poll(PollResult("poll-z", 9e9))
    state.close()
    assert path.read_bytes() == before
    writer = SQLitePollerState(path)  # and nothing was recorded meanwhile
    assert sorted(writer.load()) == [0, 1, 2]
    writer.close()


def test_a_poller_state_opened_read_only_sees_what_the_poller_commits(tmp_path: Path) -> None:
    path = tmp_path / "poller.sqlite3"
    writer = SQLitePollerState(path)
    writer.record_poll(PollResult("poll-1", 1.0, "running"))
    reader = SQLitePollerState.open_read_only(path)
    assert reader is not None
    assert reader.last_poll() == PollResult("poll-1", 1.0, "running")
    writer.record_poll(PollResult("poll-1", 1.0, "succeeded", 2.0, fetched=7))
    last = reader.last_poll()
    assert last is not None and (last.status, last.fetched) == ("succeeded", 7)
    reader.close()
    writer.close()


# -- connections of every thread ------------------------------------------------------


@pytest.fixture
def parked() -> Iterator[Callable[[Callable[[], Any]], threading.Thread]]:
    """Runs a function in a thread that then waits (alive) until the test ends."""
    release = threading.Event()
    threads: list[threading.Thread] = []

    def start(work: Callable[[], Any]) -> threading.Thread:
        done = threading.Event()

        def run() -> None:
            work()
            done.set()
            release.wait(30)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert done.wait(30)
        threads.append(thread)
        return thread

    yield start
    release.set()
    for thread in threads:
        thread.join(30)


def test_close_closes_the_connections_other_threads_opened(
    tmp_path: Path, parked: Callable[[Callable[[], Any]], threading.Thread]
) -> None:
    bus = SQLiteBus(tmp_path / "bus.sqlite3")
    bus.setup()
    parked(lambda: bus.publish([Message(b"from the poller thread")]))
    parked(lambda: bus.stats())
    assert _open_connections(bus.path) == 3
    bus.close()  # the threads are still alive, their connections idle
    assert _open_connections(bus.path) == 0
    assert bus.stats().backlog == 1  # and the bus opens again when used
    bus.close()
    assert _open_connections(bus.path) == 0


def test_a_thread_that_ended_has_its_connection_closed(tmp_path: Path) -> None:
    bus = SQLiteBus(tmp_path / "bus.sqlite3")
    bus.setup()
    bus.close()
    gc.disable()  # a connection left to the collector stays open until it runs
    try:
        thread = threading.Thread(target=lambda: bus.publish([Message(b"a")]))
        thread.start()
        thread.join()
        assert bus.stats().backlog == 1  # this thread's connection opens, the other's goes
        assert _open_connections(bus.path) == 1
    finally:
        gc.enable()
    bus.close()
