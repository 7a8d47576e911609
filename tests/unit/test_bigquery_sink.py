"""The BigQuery sink splits a batch into MERGEs whose request fits BigQuery's 10 MB
limit on a request, query parameters included: measured on the parameter's JSON as the
client sends it (no emulator needed: the size is the client's)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ey_platform.warehouse.base import EventRows
from ey_platform.warehouse.bigquery.sink import (
    MAX_PARAMETER_BYTES,
    _chunks,
    _merge_sql,
    carts_parameter,
    rows_parameter,
)
from ey_platform.warehouse.raw_schema import raw_table

pytest.importorskip("google.cloud.bigquery")

REQUEST_LIMIT = 10 * 1000 * 1000
NOW = datetime(2026, 12, 2, tzinfo=UTC)


def batch(n: int, size: int) -> EventRows:
    data = [orjson.dumps({"event_id": f"e{i}", "pad": "x" * (size - 40)}) for i in range(n)]
    return EventRows(data, [f"m{i}" for i in range(n)], [NOW] * n)


def request_bytes(rows: EventRows) -> int:
    return len(orjson.dumps(rows_parameter(rows).to_api_repr()))


def test_a_full_batch_is_split_into_requests_under_the_limit() -> None:
    full = batch(20_000, 450)  # the consumer's default batch of cart-sized events
    assert request_bytes(full) > REQUEST_LIMIT  # one MERGE would be refused
    chunks = list(_chunks(full, MAX_PARAMETER_BYTES))
    assert len(chunks) == 2
    assert all(request_bytes(chunk) < 0.8 * REQUEST_LIMIT for chunk in chunks)
    assert [m for c in chunks for m in c.message_ids] == full.message_ids  # in order, whole


def test_chunks_keep_every_event_once_and_an_oversized_one_alone() -> None:
    rows = EventRows([b"a" * 3, b"b" * 3, b"c" * 10, b"d"], ["1", "2", "3", "4"], [NOW] * 4)
    assert [c.data for c in _chunks(rows, 6)] == [[b"aaa", b"bbb"], [b"c" * 10], [b"d"]]
    assert list(_chunks(EventRows([], [], []), 6)) == []


def test_the_merge_reads_only_the_batchs_carts() -> None:
    data = [orjson.dumps({"event_id": f"e{i}", "cart_id": i % 3 + 7}) for i in range(9)]
    carts = carts_parameter(EventRows(data, ["m"] * 9, [NOW] * 9))
    assert (carts.name, carts.array_type, carts.values) == ("carts", "INT64", [7, 8, 9])
    assert "ON t.cart_id IN UNNEST(@carts) AND t.event_id = s.event_id" in _merge_sql(
        "ds.carts_events", raw_table("carts_events")
    )


def test_a_full_chunk_with_its_carts_fits_a_request() -> None:
    n = MAX_PARAMETER_BYTES // 400
    data = [
        orjson.dumps({"event_id": f"e{i:031d}", "cart_id": 10**9 + i, "pad": "x" * 380})
        for i in range(n)
    ]
    rows = EventRows(data, [f"m{i}" for i in range(n)], [NOW] * n)
    chunk = next(_chunks(rows, MAX_PARAMETER_BYTES))  # as full as a chunk gets
    carts = len(orjson.dumps(carts_parameter(chunk).to_api_repr()))
    assert request_bytes(chunk) + carts < REQUEST_LIMIT
