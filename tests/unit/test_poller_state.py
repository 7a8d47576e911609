"""The poller's state keeps its carts in memory between polls, and reads the file again
only when another connection wrote it (a second poller, an operator's repair)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ey_platform.errors import StateError
from ey_platform.state.base import Known
from ey_platform.state.sqlite import SQLitePollerState


def _rows_read(state: SQLitePollerState) -> list[str]:
    """Records every statement the state's connection runs from now on."""
    seen: list[str] = []
    state.con.set_trace_callback(seen.append)
    return seen


def test_a_load_after_a_save_comes_from_memory_and_equals_the_file(tmp_path: Path) -> None:
    path = tmp_path / "poller.sqlite3"
    state = SQLitePollerState(path)
    state.save([(1, "a", 1), (2, "b", 1)])
    assert state.load() == {1: Known("a", 1), 2: Known("b", 1)}
    state.save(iter([(2, None, 2), (3, "c", 1)]))  # a generator, as the poller passes
    statements = _rows_read(state)
    loaded = state.load()
    assert not any("FROM carts" in s for s in statements)  # memory, not the file
    fresh = SQLitePollerState(path)
    assert loaded == fresh.load() == {1: Known("a", 1), 2: Known(None, 2), 3: Known("c", 1)}
    fresh.close()
    state.close()


def test_the_callers_copy_does_not_move_when_the_state_saves(tmp_path: Path) -> None:
    state = SQLitePollerState(tmp_path / "poller.sqlite3")
    state.save([(1, "a", 1)])
    known = state.load()
    state.save([(1, "b", 2), (9, "z", 1)])
    assert known == {1: Known("a", 1)}
    assert state.load() == {1: Known("b", 2), 9: Known("z", 1)}
    state.close()


def test_a_write_by_another_connection_is_read_at_the_next_load(tmp_path: Path) -> None:
    path = tmp_path / "poller.sqlite3"
    state = SQLitePollerState(path)
    state.save([(1, "a", 1), (2, "b", 1)])
    assert state.load()[1] == Known("a", 1)
    other = sqlite3.connect(path)
    with other:
        other.execute("UPDATE carts SET content_hash = 'x', version = 5 WHERE cart_id = 1")
        other.execute("DELETE FROM carts WHERE cart_id = 2")
    other.close()
    assert state.load() == {1: Known("x", 5)}
    state.close()


def test_a_failed_save_forgets_the_memory(tmp_path: Path) -> None:
    path = tmp_path / "poller.sqlite3"
    state = SQLitePollerState(path)
    state.save([(1, "a", 1)])
    state.load()
    with pytest.raises(StateError, match="save failed"):
        state.save([(2, "b", None)])  # type: ignore[list-item]  # version is NOT NULL
    statements = _rows_read(state)
    assert state.load() == {1: Known("a", 1)}
    assert any("FROM carts" in s for s in statements)  # read from the file again
    state.close()


def test_a_save_that_fails_after_its_commit_reads_the_file_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = SQLitePollerState(tmp_path / "poller.sqlite3")
    state.save([(1, "a", 1)])
    state.load()

    def interrupted(*_: object) -> Known:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr("ey_platform.state.sqlite.Known", interrupted)
        with pytest.raises(KeyboardInterrupt):
            state.save([(1, "b", 2)])  # committed, then interrupted in the memory's update
    assert state.load() == {1: Known("b", 2)}  # the commit, read from the file
    state.close()
