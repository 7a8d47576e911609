"""The lake contract, for the local folder and Cloud Storage (on its emulator)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ey_platform.errors import LakeError
from ey_platform.lake.base import (
    Lake,
    committed_days,
    manifest_key,
    manifests,
    part_key,
    put_bytes,
    put_json,
)

DAY = date(2026, 11, 26)


def test_an_object_is_written_once(lake: Lake) -> None:
    key = part_key("products", DAY, "run1", 0)
    first = put_bytes(lake, key, b'{"id":1}\n', 1)
    assert (first.records, first.size, first.key) == (1, 9, key)
    assert first.uri == lake.uri(key)
    with pytest.raises(LakeError, match="written once"):
        put_bytes(lake, key, b'{"id":2}\n', 1)
    assert lake.read(key) == b'{"id":1}\n'  # the first write stands


def test_streamed_writes_commit_as_one_object(lake: Lake) -> None:
    key = part_key("users", DAY, "run1", 0)
    writer = lake.create(key)
    writer.write(b'{"id":1}\n', 1)
    assert lake.list("raw/users/") == []  # nothing visible before the commit
    writer.write(b'{"id":2}\n', 1)
    obj = writer.commit()
    assert (obj.records, lake.read(key)) == (2, b'{"id":1}\n{"id":2}\n')


def test_an_aborted_write_leaves_nothing(lake: Lake) -> None:
    writer = lake.create(part_key("users", DAY, "run1", 0))
    writer.write(b"half", 1)
    writer.abort()
    writer.abort()  # twice is fine
    assert lake.list("raw/") == []


def test_listing_by_prefix_is_sorted_and_exact(lake: Lake) -> None:
    for run in ("run2", "run1"):
        put_bytes(lake, part_key("products", DAY, run, 0), b"{}\n", 1)
    put_bytes(lake, part_key("users", DAY, "run1", 0), b"{}\n", 1)
    keys = lake.list("raw/products/")
    assert keys == sorted(keys) and len(keys) == 2
    assert all(k.startswith("raw/products/ingestion_date=2026-11-26/") for k in keys)


def test_manifests_are_read_back_in_run_order(lake: Lake) -> None:
    for run in ("20261126T020000Z-b", "20261126T010000Z-a"):
        put_json(lake, manifest_key("users", DAY, run), {"run_id": run, "records": 10})
    assert [m["run_id"] for m in manifests(lake, "users", DAY)] == [
        "20261126T010000Z-a",
        "20261126T020000Z-b",
    ]


def test_reading_a_missing_object_names_it(lake: Lake) -> None:
    with pytest.raises(LakeError, match=r"raw/nothing\.jsonl"):
        lake.read("raw/nothing.jsonl")


def test_committed_days_are_the_days_of_a_range_with_a_manifest(lake: Lake) -> None:
    before, after = DAY - timedelta(days=1), DAY + timedelta(days=1)
    put_json(lake, manifest_key("users", before, "run1"), {"run_id": "run1"})
    put_json(lake, manifest_key("products", DAY, "run2"), {"run_id": "run2"})
    put_bytes(lake, part_key("users", DAY, "run3", 0), b"{}\n", 1)  # an orphan: no manifest
    put_json(lake, manifest_key("users", after + timedelta(days=1), "run4"), {"run_id": "run4"})
    assert committed_days(lake, ["products", "users"], before, after) == {
        before: ["users"],
        DAY: ["products"],
        after: [],
    }
    assert committed_days(lake, ["users"], after, before) == {}
