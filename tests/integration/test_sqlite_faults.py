"""The bus and poller state files on a read-only and on a full file system (real
mounts), their read-only openers there, and what a person sees through the CLI when a
file is damaged or the disk refuses to write."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ey_platform.bus.base import Message
from ey_platform.bus.sqlite import SQLiteBus
from ey_platform.errors import BusError, StateError
from ey_platform.state.base import PollResult
from ey_platform.state.sqlite import SQLitePollerState
from tests.conftest import FakeStore

READ_ONLY = "read-only file system"
FULL = "no space left on device"


def _mount(*args: str) -> None:
    try:
        subprocess.run(["mount", *args], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        pytest.skip(f"mounting a file system is not permitted here: {detail}")


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    where = tmp_path / "disk"
    where.mkdir()
    _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where))
    yield where
    _umount(where)


def _fill(disk: Path) -> Path:
    """Write ``disk`` full; returns the file to delete to free it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65_536, 4_096, 1):  # then whatever is left
            try:
                while os.write(fd, bytes(size)):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bfree == 0
    return filler


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(a writable folder, a read-only view of it): a read-only bind mount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    folder, view = tmp_path / "folder", tmp_path / "view"
    folder.mkdir()
    view.mkdir()
    _mount("--bind", str(folder), str(view))
    try:
        _mount("-o", "remount,bind,ro", str(view))
        yield folder, view
    finally:
        _umount(view)


def _one_line(exc: pytest.ExceptionInfo[Exception], *needles: str) -> None:
    text = str(exc.value)
    assert "\n" not in text
    for needle in needles:
        assert needle in text


def _bus_with(path: Path, messages: int) -> None:
    bus = SQLiteBus(path)
    bus.setup()
    bus.publish([Message(str(i).encode(), {"i": str(i)}, str(i % 7)) for i in range(messages)])
    bus.close()


def _carts(n: int) -> list[tuple[int, str | None, int]]:
    return [(i, f"{i:064x}", 1) for i in range(n)]


# -- a full disk ----------------------------------------------------------------------


def test_a_bus_on_a_full_disk_refuses_writes_and_keeps_what_it_held(small_disk: Path) -> None:
    path = small_disk / "bus.sqlite3"
    _bus_with(path, 200)
    filler = _fill(small_disk)
    with pytest.raises(BusError) as exc:  # SQLite cannot even make its WAL index
        SQLiteBus(path).setup()
    _one_line(exc, f"bus file {path}: setup failed: {FULL}")
    with pytest.raises(BusError) as exc:
        SQLiteBus(small_disk / "new" / "bus.sqlite3").setup()
    _one_line(exc, f"bus file {small_disk / 'new' / 'bus.sqlite3'}: setup failed: {FULL}")
    filler.unlink()
    bus = SQLiteBus(path)
    bus.setup()
    filler = _fill(small_disk)  # while the bus is open
    rng = random.Random(5)
    with pytest.raises(BusError) as exc:
        bus.publish([Message(rng.randbytes(300)) for _ in range(5_000)])
    _one_line(exc, f"bus file {path}: publish failed: {FULL}")
    bus.close()
    filler.unlink()
    bus = SQLiteBus(path)
    bus.setup()
    got = bus.pull(1_000)
    assert sorted(int(m.data) for m in got) == list(range(200))
    assert bus.ack([m.ack_id for m in got]) == 200
    bus.close()


def test_a_poller_state_on_a_full_disk_refuses_writes_and_keeps_every_cart(
    small_disk: Path,
) -> None:
    path = small_disk / "stream" / "poller.sqlite3"
    state = SQLitePollerState(path)
    state.save(_carts(500))
    state.close()
    filler = _fill(small_disk)
    with pytest.raises(StateError) as exc:
        SQLitePollerState(path)
    _one_line(exc, f"poller state {path}: open failed: {FULL}")
    filler.unlink()
    state = SQLitePollerState(path)
    filler = _fill(small_disk)  # while the state is open
    with pytest.raises(StateError) as exc:
        state.save(_carts(20_000))  # about 2 MB
    _one_line(exc, f"poller state {path}: save failed: {FULL}")
    with pytest.raises(StateError) as exc:
        state.record_poll(PollResult("poll-" + "x" * 100_000, 1.0))
    _one_line(exc, f"poller state {path}: record poll failed: {FULL}")
    state.close()
    filler.unlink()
    state = SQLitePollerState(path)
    assert sorted(state.load()) == list(range(500))
    assert state.last_poll() is None
    state.close()


# -- a read-only file system ----------------------------------------------------------


def test_a_bus_in_a_read_only_folder_refuses_every_write(
    read_only: tuple[Path, Path],
) -> None:
    folder, view = read_only
    _bus_with(folder / "bus.sqlite3", 50)
    path = view / "bus.sqlite3"
    bus = SQLiteBus(path)
    for name, call in {
        "setup": bus.setup,
        "publish": lambda: bus.publish([Message(b"x")]),
        "pull": lambda: bus.pull(10),
        "ack": lambda: bus.ack(["1:0:1"]),
    }.items():
        with pytest.raises(BusError) as exc:
            call()
        _one_line(exc, f"bus file {path}: {name} failed: {READ_ONLY}")
    bus.close()
    with pytest.raises(BusError) as exc:  # its folder cannot be made either
        SQLiteBus(view / "bus" / "bus.sqlite3").setup()
    _one_line(exc, f"bus file {view / 'bus' / 'bus.sqlite3'}: setup failed: {READ_ONLY}")
    writable = SQLiteBus(folder / "bus.sqlite3")
    assert writable.stats().backlog == 50  # nothing lost
    writable.close()


def test_a_poller_state_in_a_read_only_folder_refuses_to_open_for_writing(
    read_only: tuple[Path, Path],
) -> None:
    folder, view = read_only
    state = SQLitePollerState(folder / "poller.sqlite3")
    state.save(_carts(3))
    state.close()
    for path in (view / "poller.sqlite3", view / "stream" / "poller.sqlite3"):
        with pytest.raises(StateError) as exc:
            SQLitePollerState(path)
        _one_line(exc, f"poller state {path}: open failed: {READ_ONLY}")
    state = SQLitePollerState(folder / "poller.sqlite3")
    assert sorted(state.load()) == [0, 1, 2]
    state.close()


# -- read-only openers where nothing can be written -----------------------------------


def test_read_only_openers_read_a_closed_wal_file_in_a_read_only_folder(
    read_only: tuple[Path, Path],
) -> None:
    folder, view = read_only
    _bus_with(folder / "bus.sqlite3", 30)
    state = SQLitePollerState(folder / "poller.sqlite3")
    state.save(_carts(4))
    state.record_poll(PollResult("poll-1", 1.0, "succeeded", 2.0, fetched=4))
    state.close()
    assert sorted(p.name for p in folder.iterdir()) == ["bus.sqlite3", "poller.sqlite3"]
    bus = SQLiteBus.open_read_only(view / "bus.sqlite3")  # no -wal, no -shm
    assert bus is not None
    stats = bus.stats()
    assert (stats.backlog, stats.leased, stats.dead_letters) == (30, 0, 0)
    assert bus.dead_letters() == []
    bus.close()
    read = SQLitePollerState.open_read_only(view / "poller.sqlite3")
    assert read is not None
    assert sorted(read.load()) == [0, 1, 2, 3]
    last = read.last_poll()
    assert last is not None and last.fetched == 4
    read.close()
    assert SQLiteBus.open_read_only(view / "missing.sqlite3") is None
    assert SQLitePollerState.open_read_only(view / "stream" / "poller.sqlite3") is None


WRITER = """
import sys
from pathlib import Path
from ey_platform.bus.base import Message
from ey_platform.bus.sqlite import SQLiteBus
from ey_platform.state.base import PollResult
from ey_platform.state.sqlite import SQLitePollerState

bus = SQLiteBus(Path(sys.argv[1]) / "bus.sqlite3")
bus.setup()
state = SQLitePollerState(Path(sys.argv[1]) / "poller.sqlite3")
for line in sys.stdin:
    n = int(line)
    bus.publish([Message(b"x")] * n)
    state.record_poll(PollResult(f"poll-{n}", float(n), "succeeded", fetched=n))
    print("ok", flush=True)
"""


@pytest.fixture
def writer(read_only: tuple[Path, Path]) -> Iterator[subprocess.Popen[str]]:
    """Another process with the bus and the poller state open for writing in the
    writable folder; each line of stdin publishes that many messages and records a poll."""
    folder, _ = read_only
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield proc
    proc.kill()
    proc.communicate(timeout=30)


def _write(proc: subprocess.Popen[str], n: int) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{n}\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "ok\n"


def test_read_only_openers_see_the_commits_of_a_writer_through_a_read_only_view(
    read_only: tuple[Path, Path], writer: subprocess.Popen[str]
) -> None:
    _, view = read_only
    _write(writer, 5)
    bus = SQLiteBus.open_read_only(view / "bus.sqlite3")
    state = SQLitePollerState.open_read_only(view / "poller.sqlite3")
    assert bus is not None and state is not None
    assert bus.stats().backlog == 5
    _write(writer, 3)
    assert bus.stats().backlog == 8
    last = state.last_poll()
    assert last is not None and last.poll_id == "poll-5"  # started at 5.0, after 3.0
    _write(writer, 9)
    last = state.last_poll()
    assert bus.stats().backlog == 17 and last is not None and last.poll_id == "poll-9"
    bus.close()
    state.close()


def test_a_wal_left_with_commits_is_not_read_as_if_it_were_empty(
    read_only: tuple[Path, Path], writer: subprocess.Popen[str]
) -> None:
    folder, view = read_only
    _write(writer, 5)
    writer.send_signal(signal.SIGKILL)  # stops before it checkpoints: the commits stay in -wal
    writer.communicate(timeout=30)
    (folder / "bus.sqlite3-shm").unlink()  # and the WAL index is gone
    assert (folder / "bus.sqlite3-wal").stat().st_size > 0
    with pytest.raises(BusError) as exc:  # immutable=1 would show a bus without them
        SQLiteBus.open_read_only(view / "bus.sqlite3")
    _one_line(exc, f"bus file {view / 'bus.sqlite3'}: open failed: {READ_ONLY}")


# -- through the CLI ------------------------------------------------------------------


def _cli(data: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "ey_platform", "stream", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "EYP_DATA_DIR": str(data), **(env or {})},
    )
    return result.returncode, result.stdout, result.stderr


def _one_error_line(returncode: int, stderr: str, start: str) -> None:
    assert returncode == 1, stderr
    assert "Traceback" not in stderr
    # The last line is the one error; before it only log lines (the run's job.failed,
    # its incident), each a line of its own.
    *logged, last = stderr.strip().splitlines()
    assert last.startswith(f"error: {start}"), stderr
    assert all(re.match(r"\d{4}-\d\d-\d\dT\S+ (INFO|WARNING|ERROR) ", line) for line in logged), (
        stderr
    )


COMMANDS = {"poll": ("poll", "--once"), "consume": ("consume", "--drain"), "status": ("status",)}


def _args(command: str, fakestore: FakeStore) -> tuple[str, ...]:
    return (*COMMANDS[command], *(["--api-url", fakestore.url] if command == "poll" else []))


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_the_cli_names_a_bus_file_that_is_not_a_database(
    tmp_path: Path, fakestore: FakeStore, command: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "bus.sqlite3").write_bytes(random.Random(7).randbytes(32_768))
    code, _, err = _cli(data, *_args(command, fakestore))
    _one_error_line(code, err, f"bus file {data / 'bus.sqlite3'} is not a SQLite database")
    assert "move it away and the bus starts empty" in err


@pytest.mark.slow
@pytest.mark.parametrize("command", ["poll", "status"])
def test_the_cli_names_a_damaged_poller_state(
    tmp_path: Path, fakestore: FakeStore, command: str
) -> None:
    data = tmp_path / "data"
    code, _, err = _cli(data, "poll", "--once", "--api-url", fakestore.url)
    assert code == 0, err
    path = data / "stream" / "poller.sqlite3"
    with path.open("r+b") as f:
        f.truncate(50)  # cut inside its header
    code, _, err = _cli(data, *_args(command, fakestore))
    _one_error_line(code, err, f"poller state {path} is damaged (database disk image")
    assert "the next poll rebuilds it from the warehouse" in err


@pytest.mark.slow
def test_the_cli_names_a_bus_that_fails_only_at_the_pull(
    tmp_path: Path, fakestore: FakeStore
) -> None:
    data = tmp_path / "data"
    path = data / "bus.sqlite3"
    data.mkdir()
    bus = SQLiteBus(path)
    bus.setup()
    bus.publish([Message(random.Random(3).randbytes(1_000)) for _ in range(1_000)])
    bus.close()
    size = path.stat().st_size
    with path.open("r+b") as f:  # the messages' pages: setup and stats still work
        f.seek(size // 2)
        f.write(b"\xff" * (size - size // 2))
    code, _, err = _cli(data, "consume", "--drain")
    _one_error_line(code, err, f"bus file {path} is damaged (database disk image is malformed)")


@pytest.mark.slow
def test_the_cli_in_a_read_only_data_dir_says_so_and_loses_nothing(
    read_only: tuple[Path, Path], fakestore: FakeStore
) -> None:
    folder, view = read_only
    code, _, err = _cli(folder, "poll", "--once", "--api-url", fakestore.url)
    assert code == 0, err
    for command in ("poll", "consume"):
        code, _, err = _cli(view, *_args(command, fakestore))
        _one_error_line(code, err, f"bus file {view / 'bus.sqlite3'}: setup failed: {READ_ONLY}")
    code, out, err = _cli(folder, "consume", "--drain")
    assert code == 0, err
    assert "consumed 7 messages: 7 loaded" in out


@pytest.mark.slow
def test_the_cli_on_a_full_disk_says_so_and_loses_nothing(
    tmp_path: Path, small_disk: Path, fakestore: FakeStore
) -> None:
    data = tmp_path / "data"
    env = {"EYP_BUS__SQLITE__PATH": str(small_disk / "bus.sqlite3")}
    code, _, err = _cli(data, "poll", "--once", "--api-url", fakestore.url, env=env)
    assert code == 0, err
    filler = _fill(small_disk)
    for command in ("poll", "consume"):
        code, _, err = _cli(data, *_args(command, fakestore), env=env)
        _one_error_line(code, err, f"bus file {small_disk / 'bus.sqlite3'}: setup failed: {FULL}")
    filler.unlink()
    code, out, err = _cli(data, "consume", "--drain", env=env)
    assert code == 0, err
    assert "consumed 7 messages: 7 loaded" in out


@pytest.mark.slow
def test_stream_status_in_a_fresh_data_dir_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, _, err = _cli(data, "status")
    assert code == 0, err
    assert not data.exists()


@pytest.mark.slow
def test_stream_status_reads_a_read_only_data_dir(
    read_only: tuple[Path, Path], fakestore: FakeStore
) -> None:
    folder, view = read_only
    code, _, err = _cli(folder, "poll", "--once", "--api-url", fakestore.url)
    assert code == 0, err
    code, out, err = _cli(view, "status")
    assert code == 0, err
    assert re.search(r"backlog \(unacked\)\W+7\b", out), out
    assert re.search(r"last poll\W+\S+ \S+ succeeded: 7 carts", out), out
