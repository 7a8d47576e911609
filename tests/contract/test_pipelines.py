"""The same pipelines on every backend set: nothing in them branches on the profile."""

from __future__ import annotations

from datetime import date

import pytest

from ey_platform.bus.base import Bus
from ey_platform.lake.base import Lake
from ey_platform.pipelines.consumer import CartConsumer, _rows
from ey_platform.pipelines.poller import CartPoller
from ey_platform.settings import Settings
from ey_platform.source.client import FakeStoreClient
from ey_platform.state.sqlite import SQLitePollerState
from ey_platform.warehouse.base import Warehouse
from ey_platform.wiring import batch_pipeline
from tests.conftest import FakeStore

DAY = date(2026, 11, 26)
pytestmark = pytest.mark.slow


def test_batch_reruns_leave_the_warehouse_as_one_run(
    fakestore: FakeStore, settings: Settings, lake: Lake, warehouse: Warehouse
) -> None:
    raw = warehouse.raw
    with FakeStoreClient(fakestore.url) as client:
        pipeline = batch_pipeline(settings, client)  # the backends of `lake` and `warehouse`
        first = pipeline.run(["products", "users"], DAY)
        assert [r.loaded for r in first] == [20, 10]
        snapshot = warehouse.query(f"SELECT id, _record_hash FROM {raw}.users ORDER BY id")
        again = pipeline.run(["products", "users"], DAY)
        assert [r.status for r in again] == ["unchanged", "unchanged"]
        assert warehouse.query(f"SELECT id, _record_hash FROM {raw}.users ORDER BY id") == snapshot
        # --from-lake reads the same day back from the lake: nothing to change
        reloaded = pipeline.run(["products"], DAY, from_lake=True)
        assert [(r.status, r.landed) for r in reloaded] == [("unchanged", 20)]
    (count,) = warehouse.query(f"SELECT count(*) FROM {raw}.products")[0]
    assert count == 20


def test_stream_lands_every_cart_once_despite_a_crash_before_the_ack(
    fakestore: FakeStore, settings: Settings, lake: Lake, warehouse: Warehouse, bus: Bus
) -> None:
    raw = warehouse.raw
    state = SQLitePollerState(settings.poller_state_path)
    with FakeStoreClient(fakestore.url) as client:
        poller = CartPoller(client, bus, state, lake)
        assert poller.poll_once().created == 7
        sink = warehouse.event_sink()
        # the consumer commits a batch and dies before acking it: the bus redelivers
        taken = bus.pull(100)
        assert sink.write(_rows(taken)) == len(taken) > 0
        bus.nack([m.ack_id for m in taken])
        result = CartConsumer(bus, sink, 100).run(drain=True)
        assert (result.loaded, result.duplicates) == (7 - len(taken), len(taken))
        # a restarted poller publishes nothing when nothing changed
        assert CartPoller(client, bus, state, lake).poll_once().published == 0
    state.close()
    rows = warehouse.query(
        f"SELECT count(*), count(DISTINCT event_id), count(DISTINCT cart_id) "
        f"FROM {raw}.carts_events"
    )
    assert tuple(rows[0]) == (7, 7, 7)
