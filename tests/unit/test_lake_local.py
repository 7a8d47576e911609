"""The local lake: atomic, write-once."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ey_platform.errors import LakeError
from ey_platform.lake.local import LocalLake


def test_write_commit_read_list(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    writer = lake.create("raw/x/ingestion_date=2026-01-01/a.jsonl")
    writer.write(b'{"id":1}\n', 1)
    writer.write(b'{"id":2}\n', 1)
    assert lake.list("raw/") == []  # nothing visible before commit
    obj = writer.commit()
    data = b'{"id":1}\n{"id":2}\n'
    assert (obj.records, obj.size, obj.sha256) == (2, len(data), hashlib.sha256(data).hexdigest())
    assert lake.read(obj.key) == data
    assert lake.list("raw/x/") == [obj.key]
    assert Path(obj.uri).stat().st_mode & 0o222 == 0


def test_a_second_write_of_the_same_key_is_refused(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    first = lake.create("k.jsonl")
    first.write(b"one\n", 1)
    first.commit()
    second = lake.create("k.jsonl")
    second.write(b"two\n", 1)
    with pytest.raises(LakeError, match="exists: lake objects are written once"):
        second.commit()
    assert lake.read("k.jsonl") == b"one\n"
    assert [p.name for p in tmp_path.iterdir()] == ["k.jsonl"]  # no temporary left


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    writer = lake.create("a/b.jsonl")
    writer.write(b"x\n", 1)
    writer.abort()
    writer.abort()
    assert lake.list("a/") == []
    assert list((tmp_path / "a").iterdir()) == []


def test_reading_a_missing_object_names_it(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="no lake object raw/none"):
        LocalLake(tmp_path).read("raw/none")


def test_sweep_removes_what_dead_writers_left_and_nothing_published(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    published = lake.create("raw/users/ingestion_date=2026-01-01/users-r1-p00000.jsonl")
    published.write(b'{"id":1}\n', 1)
    kept = published.commit()
    dead = lake.create("raw/users/ingestion_date=2026-01-02/users-r2-p00000.jsonl")
    dead.write(b'{"id":2}\n', 1)  # its process killed here: never committed, never aborted
    other = lake.create("raw/products/ingestion_date=2026-01-02/products-r2-p00000.jsonl")
    other.write(b'{"id":3}\n', 1)
    swept = lake.sweep("raw/users/")
    assert [Path(key).name.startswith(".users-r2-p00000.jsonl.") for key in swept] == [True]
    assert not list((tmp_path / "raw/users").rglob(".*.tmp"))
    assert lake.read(kept.key) == b'{"id":1}\n'
    assert len(list((tmp_path / "raw/products").rglob(".*.tmp"))) == 1  # not under the prefix
    assert lake.sweep("raw/users/") == []
    assert lake.sweep("raw/nothing/") == []
    other.abort()
    dead.abort()
