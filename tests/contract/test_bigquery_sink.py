"""The sink's MERGE in chunks, on the BigQuery emulator: a batch split over several
statements still lands each event once, a duplicate across two chunks included, and a
redelivered batch lands nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ey_platform.warehouse.base import EventRows, Warehouse
from ey_platform.warehouse.bigquery import sink

pytestmark = pytest.mark.parametrize("settings", ["gcp-emulators"], indirect=True)

NOW = datetime(2026, 11, 26, 10, 0, 1, tzinfo=UTC)


def event(n: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{n}",
            "event_type": "cart_created",
            "schema_version": 1,
            "cart_id": n,
            "cart_version": 1,
            "content_hash": f"h{n}",
            "cart": {"id": n, "userId": 1},
            "extracted_at": "2026-11-26T10:00:00+00:00",
            "published_at": "2026-11-26T10:00:01+00:00",
        }
    )


def test_a_batch_in_several_merges_lands_each_event_once(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sink, "MAX_PARAMETER_BYTES", 3 * len(event(1)))  # 3 events a MERGE
    data = [event(n) for n in range(10)] + [event(2), event(9)]  # repeats in later chunks
    rows = EventRows(data, [f"m{i}" for i in range(len(data))], [NOW] * len(data))
    assert len(list(sink._chunks(rows, sink.MAX_PARAMETER_BYTES))) == 4
    writer = warehouse.event_sink()
    assert writer.write(rows) == 10
    assert writer.write(rows) == 0
    landed = warehouse.query(
        f"SELECT count(*), count(DISTINCT event_id) FROM {warehouse.raw}.carts_events"
    )
    assert [tuple(r) for r in landed] == [(10, 10)]
