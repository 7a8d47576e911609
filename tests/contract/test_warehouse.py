"""The warehouse contract, for DuckDB and BigQuery (on its emulator, loading from the
Cloud Storage emulator): replace-the-day idempotency, all-or-nothing loads, the event
sink's exactly-once effect, the run log, and the named reads the pipelines use."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from ey_platform.errors import ReconciliationError, WarehouseError
from ey_platform.lake.base import Lake, LakeObject, part_key, put_bytes, quarantine_key
from ey_platform.warehouse.base import EventRows, LoadMeta, RunRecord, Warehouse

DAY = date(2026, 11, 26)
NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def _land(lake: Lake, run: str, ids: range) -> LakeObject:
    lines = b"".join(orjson.dumps({"id": i, "title": f"t{i}", "extra": [i]}) + b"\n" for i in ids)
    return put_bytes(lake, part_key("products", DAY, run, 0), lines, len(ids))


def _load(wh: Warehouse, run: str, *parts: LakeObject, rejects: LakeObject | None = None) -> int:
    load = wh.begin_load(LoadMeta("products", DAY, run, NOW))
    try:
        for part in parts:
            load.add(part)
        if rejects is not None:
            load.add_rejects(rejects)
        return load.commit()
    except BaseException:
        load.abort()
        raise


def _ids(wh: Warehouse) -> list[int]:
    return [r[0] for r in wh.query(f"SELECT id FROM {wh.raw}.products ORDER BY id")]


def test_reloading_a_day_replaces_it(lake: Lake, warehouse: Warehouse) -> None:
    assert _load(warehouse, "run1", _land(lake, "run1", range(1, 6))) == 5
    assert _load(warehouse, "run2", _land(lake, "run2", range(3, 9))) == 6
    assert _ids(warehouse) == [3, 4, 5, 6, 7, 8]
    assert warehouse.partition_runs("products", DAY) == {"run2"}


def test_rows_keep_the_record_as_received_and_its_metadata(
    lake: Lake, warehouse: Warehouse
) -> None:
    part = _land(lake, "run1", range(1, 2))
    _load(warehouse, "run1", part)
    ((raw, source, run, hash_),) = warehouse.query(
        f"SELECT _raw, _source_file, _run_id, _record_hash FROM {warehouse.raw}.products"
    )
    record = raw if isinstance(raw, dict) else orjson.loads(raw)
    assert record == {"id": 1, "title": "t1", "extra": [1]}  # unknown fields kept
    assert (source, run) == (part.uri, "run1")
    assert len(hash_) == 32


def test_a_count_mismatch_changes_nothing(lake: Lake, warehouse: Warehouse) -> None:
    _load(warehouse, "run1", _land(lake, "run1", range(1, 4)))
    good = _land(lake, "run2", range(10, 15))
    lying = LakeObject(good.key, good.uri, good.records + 1, good.size, good.sha256)
    with pytest.raises(ReconciliationError):
        _load(warehouse, "run2", lying)
    assert _ids(warehouse) == [1, 2, 3]


def test_an_aborted_load_changes_nothing(lake: Lake, warehouse: Warehouse) -> None:
    _load(warehouse, "run1", _land(lake, "run1", range(1, 4)))
    load = warehouse.begin_load(LoadMeta("products", DAY, "run2", NOW))
    load.add(_land(lake, "run2", range(7, 9)))
    load.abort()
    assert _ids(warehouse) == [1, 2, 3]


def test_the_quarantine_of_a_day_is_replaced_with_it(lake: Lake, warehouse: Warehouse) -> None:
    def rejects(run: str, n: int) -> LakeObject:
        lines = b"".join(
            orjson.dumps({"reason": f"price: bad {i}", "record": {"id": i}}) + b"\n"
            for i in range(n)
        )
        return put_bytes(lake, quarantine_key("products", DAY, run), lines, n)

    _load(warehouse, "run1", _land(lake, "run1", range(1, 3)), rejects=rejects("run1", 2))
    _load(warehouse, "run2", _land(lake, "run2", range(1, 3)), rejects=rejects("run2", 1))
    rows = warehouse.query(
        f"SELECT entity, _run_id, reason FROM {warehouse.raw}._quarantine ORDER BY reason"
    )
    assert [tuple(r) for r in rows] == [("products", "run2", "price: bad 0")]


def _event(
    event_id: str,
    cart_id: int,
    version: int,
    kind: str = "cart_created",
    extracted: str = "2026-11-26T10:00:00+00:00",
) -> bytes:
    deleted = kind == "cart_deleted"
    return orjson.dumps(
        {
            "event_id": event_id,
            "event_type": kind,
            "schema_version": 1,
            "cart_id": cart_id,
            "cart_version": version,
            "content_hash": None if deleted else "h" + event_id,
            "cart": None if deleted else {"id": cart_id, "userId": 1},
            "extracted_at": extracted,
            "published_at": "2026-11-26T10:00:01+00:00",
        }
    )


def _batch(*events: bytes) -> EventRows:
    return EventRows(list(events), [f"m{i}" for i in range(len(events))], [NOW for _ in events])


def test_the_event_sink_lands_each_event_once(warehouse: Warehouse) -> None:
    sink = warehouse.event_sink()
    batch = _batch(_event("e1", 1, 1), _event("e2", 2, 1), _event("e2", 2, 1))
    assert sink.write(batch) == 2  # a duplicate inside the batch lands once
    assert sink.write(batch) == 0  # a redelivered batch lands nothing
    assert sink.write(_batch(_event("e3", 1, 2, "cart_deleted"), _event("e1", 1, 1))) == 1
    sink.release()
    rows = warehouse.query(
        f"SELECT event_id, event_type, cart IS NULL, _event_date "
        f"FROM {warehouse.raw}.carts_events ORDER BY event_id"
    )
    assert [tuple(r) for r in rows] == [
        ("e1", "cart_created", False, DAY),
        ("e2", "cart_created", False, DAY),
        ("e3", "cart_deleted", True, DAY),
    ]


def test_the_landed_cart_states_are_the_last_observed_with_the_highest_version(
    warehouse: Warehouse,
) -> None:
    sink = warehouse.event_sink()
    sink.write(
        _batch(
            _event("a1", 1, 1),
            _event("a2", 1, 2, "cart_updated", extracted="2026-11-26T10:05:00+00:00"),
            # a poller that lost its memory: version 1 again, observed last
            _event("a3", 1, 1, "cart_created", extracted="2026-11-26T10:09:00+00:00"),
            _event("b1", 2, 1),
            _event("b2", 2, 2, "cart_deleted", extracted="2026-11-26T10:05:00+00:00"),
        )
    )
    sink.release()
    assert sorted(warehouse.cart_states()) == [(1, "ha3", 2), (2, None, 2)]
    assert warehouse.live_cart_states() == [(1, "ha3", 2)]


def test_the_latest_observed_event_wins_over_a_higher_version(warehouse: Warehouse) -> None:
    sink = warehouse.event_sink()
    sink.write(
        _batch(
            # deleted after a lost memory: the deletion has the lower version, seen last
            _event("c1", 3, 3, "cart_updated"),
            _event("c2", 3, 1, "cart_deleted", extracted="2026-11-26T10:07:00+00:00"),
            # observed at the same instant (a crash before the state was saved): the
            # higher version wins
            _event("d1", 4, 1, "cart_created", extracted="2026-11-26T10:03:00+00:00"),
            _event("d2", 4, 2, "cart_updated", extracted="2026-11-26T10:03:00+00:00"),
            _event("f1", 6, 2, "cart_updated", extracted="2026-11-26T10:03:00+00:00"),
            _event("f2", 6, 1, "cart_created", extracted="2026-11-26T10:03:00+00:00"),
            # deleted, then created again
            _event("e1", 5, 1),
            _event("e2", 5, 2, "cart_deleted", extracted="2026-11-26T10:01:00+00:00"),
            _event("e3", 5, 3, "cart_created", extracted="2026-11-26T10:02:00+00:00"),
        )
    )
    sink.release()
    assert sorted(warehouse.cart_states()) == [
        (3, None, 3),
        (4, "hd2", 2),
        (5, "he3", 3),
        (6, "hf1", 2),
    ]
    assert sorted(warehouse.live_cart_states()) == [(4, "hd2", 2), (5, "he3", 3), (6, "hf1", 2)]
    rows = warehouse.query(
        f"SELECT cart_id, event_id, event_type, top_version FROM {warehouse.raw}.cart_states "
        "ORDER BY cart_id"
    )
    assert [tuple(r) for r in rows] == [
        (3, "c2", "cart_deleted", 3),
        (4, "d2", "cart_updated", 2),
        (5, "e3", "cart_created", 3),
        (6, "f1", "cart_updated", 2),
    ]


def test_no_cart_landed_no_cart_state(warehouse: Warehouse) -> None:
    assert warehouse.cart_states() == []
    assert warehouse.live_cart_states() == []


def _columns(warehouse: Warehouse, name: str) -> list[tuple[str, str]]:
    """The columns of a raw table or view, with their types, as the backend has them."""
    from ey_platform.warehouse.bigquery import BigQueryWarehouse

    if isinstance(warehouse, BigQueryWarehouse):  # a query's schema: the same for a view
        _, rows = warehouse.run(f"SELECT * FROM {warehouse.table(name)} LIMIT 0")
        return [(f.name, f.field_type) for f in rows.schema]
    rows = warehouse.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [warehouse.raw, name],
    )
    return [(str(column), str(kind)) for column, kind in rows]


def test_the_cart_states_view_has_every_column_of_the_events_and_the_top_version(
    warehouse: Warehouse,
) -> None:
    events = _columns(warehouse, "carts_events")
    assert len(events) == 13
    version_type = dict(events)["cart_version"]
    assert _columns(warehouse, "cart_states") == [*events, ("top_version", version_type)]


def test_a_run_is_recorded_once_with_its_last_state(warehouse: Warehouse) -> None:
    run = RunRecord("run1", "batch", "users", DAY, NOW, "api")
    warehouse.record_run(run)
    run.status, run.finished_at, run.loaded, run.error = "failed", NOW, 0, "it's broken"
    warehouse.record_run(run)
    rows = warehouse.query(
        f"SELECT run_id, status, loaded, error FROM {warehouse.raw}._pipeline_runs"
    )
    assert [tuple(r) for r in rows] == [("run1", "failed", 0, "it's broken")]


def test_a_day_is_finished_once_every_entity_has_a_run_that_ended_well(
    warehouse: Warehouse,
) -> None:
    def day_finished(day: date, entities: tuple[str, ...]) -> bool:
        return set(entities) <= warehouse.finished_entities("batch", day)

    entities = ("products", "users")
    warehouse.record_run(RunRecord("r1", "batch", "products", DAY, NOW, "api", "loaded"))
    warehouse.record_run(RunRecord("r2", "batch", "users", DAY, NOW, "api", "failed"))
    warehouse.record_run(RunRecord("r3", "batch", "users", date(2026, 11, 25), NOW, "api"))
    assert not day_finished(DAY, entities)  # users failed that day
    warehouse.record_run(RunRecord("r4", "batch", "users", DAY, NOW, "api", "unchanged"))
    assert day_finished(DAY, entities)
    assert not day_finished(date(2026, 11, 25), entities)


def test_finished_entities_are_those_of_the_job_and_day_that_ended_well(
    warehouse: Warehouse,
) -> None:
    for run in (
        RunRecord("r1", "batch", "products", DAY, NOW, "api", "loaded"),
        RunRecord("r2", "batch", "users", DAY, NOW, "api", "running"),
        RunRecord("r3", "batch", "carts", DAY, NOW, "api", "abandoned"),
        RunRecord("r4", "backfill", "users", DAY, NOW, "lake", "loaded"),
        RunRecord("r5", "batch", "users", date(2026, 11, 25), NOW, "api", "unchanged"),
        RunRecord("r6", "batch", "products", DAY, NOW, "api", "unchanged"),
    ):
        warehouse.record_run(run)
    assert warehouse.finished_entities("batch", DAY) == {"products"}
    assert warehouse.finished_entities("backfill", DAY) == {"users"}
    assert warehouse.finished_entities("batch", date(2026, 11, 25)) == {"users"}
    assert warehouse.finished_entities("batch", date(2026, 11, 24)) == set()


def test_a_failing_query_raises_a_warehouse_error_naming_the_cause(warehouse: Warehouse) -> None:
    with pytest.raises(WarehouseError, match="no_such_table"):
        warehouse.query(f"SELECT * FROM {warehouse.raw}.no_such_table")


def test_the_latest_day_and_its_rows_are_what_a_new_load_is_held_against(
    lake: Lake, warehouse: Warehouse
) -> None:
    assert warehouse.latest_day_rows("products") is None
    _load(warehouse, "run1", _land(lake, "run1", range(1, 6)))
    assert warehouse.latest_day_rows("products") == (DAY, 5)
    earlier = date(2026, 11, 20)
    load = warehouse.begin_load(LoadMeta("products", earlier, "run0", NOW))
    load.add(put_bytes(lake, part_key("products", earlier, "run0", 0), b'{"id": 1}\n', 1))
    load.commit()
    assert warehouse.latest_day_rows("products") == (DAY, 5)  # the latest day, not the last load


def test_running_runs_come_back_with_their_holder(warehouse: Warehouse) -> None:
    running = RunRecord("r1", "batch", "users", DAY, NOW, "api", holder="host-a:123")
    warehouse.record_run(running)
    warehouse.record_run(RunRecord("r2", "batch", "products", DAY, NOW, "api", "loaded"))
    warehouse.record_run(RunRecord("r3", "stream", "carts", DAY, NOW, "api"))
    (found,) = warehouse.running_runs("batch")
    assert (found.run_id, found.entity, found.day, found.status) == ("r1", "users", DAY, "running")
    assert found.holder == "host-a:123"
    assert found.started_at == NOW
    found.status, found.finished_at = "abandoned", NOW
    warehouse.record_run(found)  # what a later run does with it
    assert warehouse.running_runs("batch") == []


def _drop_holder_column(warehouse: Warehouse) -> None:
    """Make ``_pipeline_runs`` as a version before the holder column made it."""
    from ey_platform.warehouse.bigquery import BigQueryWarehouse
    from ey_platform.warehouse.duckdb import DuckDBWarehouse

    if isinstance(warehouse, DuckDBWarehouse):
        with warehouse.connect() as con:
            con.execute(f"ALTER TABLE {warehouse.raw}._pipeline_runs DROP COLUMN holder")
        return
    assert isinstance(warehouse, BigQueryWarehouse)
    from google.cloud import bigquery

    name = f"{warehouse.project}.{warehouse.raw}._pipeline_runs"
    old = [f for f in warehouse.client.get_table(name).schema if f.name != "holder"]
    warehouse.client.delete_table(name)
    warehouse.client.create_table(bigquery.Table(name, schema=old))


def test_setup_adds_the_columns_an_older_version_lacked(warehouse: Warehouse) -> None:
    _drop_holder_column(warehouse)
    warehouse.setup()
    warehouse.record_run(RunRecord("r1", "batch", "users", DAY, NOW, "api", holder="h:1"))
    assert [r.holder for r in warehouse.running_runs("batch")] == ["h:1"]


def test_events_loaded_since_counts_what_landed_after(warehouse: Warehouse) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    assert warehouse.events_loaded_since(before) == 0
    sink = warehouse.event_sink()
    sink.write(_batch(_event("e1", 1, 1), _event("e2", 2, 1)))
    sink.release()
    assert warehouse.events_loaded_since(before) == 2
    assert warehouse.events_loaded_since(datetime.now(UTC) + timedelta(seconds=5)) == 0


def _create(warehouse: Warehouse, name: str, *rows: str, built: bool = False) -> None:
    """A model of the transform with ``rows`` (SELECT lists), as dbt would leave it in
    the build dataset (``built``), or as a publication leaves a mart."""
    select = " UNION ALL ".join(f"SELECT {row}" for row in rows)
    dataset = warehouse.build if built else warehouse.analytics
    warehouse.query(f"CREATE TABLE {dataset}.{name} AS {select}")


def _build_marts(warehouse: Warehouse) -> None:
    staged = ("stg_products", "stg_users", "stg_cart_events", "stg_cart_states")
    for name in (*staged, "int_products_latest", "int_users_latest", "products_snapshot"):
        _create(warehouse, name, "1 AS n", "2 AS n", built=True)
    _create(warehouse, "dim_users", "1 AS user_key")
    _create(warehouse, "fact_order_totals", "1 AS cart_id", "2 AS cart_id", "3 AS cart_id")
    _create(
        warehouse,
        "dim_products",
        "'p1' AS product_key, 'electronics' AS category",
        "'p2', 'jewelery'",
        "'p3', 'clothing'",
    )
    _create(
        warehouse,
        "fact_orders",
        "1 AS cart_id, 'p1' AS product_key, CAST(10.5 AS NUMERIC) AS line_amount, 2 AS quantity",
        "1, 'p2', CAST(3.25 AS NUMERIC), 1",
        "3, 'p1', CAST(21 AS NUMERIC), 4",
    )


def test_the_mart_summary_counts_every_layer_and_the_live_carts(
    lake: Lake, warehouse: Warehouse
) -> None:
    _load(warehouse, "run1", _land(lake, "run1", range(1, 6)))
    sink = warehouse.event_sink()
    sink.write(
        _batch(
            _event("a1", 1, 1),
            _event("b1", 2, 1),
            _event("b2", 2, 2, "cart_deleted", extracted="2026-11-26T10:05:00+00:00"),
            _event("c1", 3, 1),
        )
    )
    sink.release()
    _build_marts(warehouse)
    summary = warehouse.mart_summary()
    raw, built, marts = warehouse.raw, warehouse.build, warehouse.analytics
    assert summary.layers == [
        ("raw", f"{raw}.products", 5),
        ("raw", f"{raw}.users", 0),
        ("raw", f"{raw}.carts_events", 4),
        ("staging", f"{built}.stg_products", 2),
        ("staging", f"{built}.stg_users", 2),
        ("staging", f"{built}.stg_cart_events", 2),
        ("staging", f"{built}.stg_cart_states", 2),
        ("intermediate", f"{built}.int_products_latest", 2),
        ("intermediate", f"{built}.int_users_latest", 2),
        ("snapshot", f"{built}.products_snapshot", 2),
        ("marts", f"{marts}.dim_products", 3),
        ("marts", f"{marts}.dim_users", 1),
        ("marts", f"{marts}.fact_orders", 3),
        ("marts", f"{marts}.fact_order_totals", 3),
    ]
    assert summary.events_table == f"{raw}.carts_events"
    assert (summary.event_carts, summary.fact_carts) == (2, 2)
    assert summary.revenue == [
        ("electronics", Decimal("31.5"), 6),
        ("jewelery", Decimal("3.25"), 1),
    ]
    assert all(isinstance(amount, Decimal) for _, amount, _ in summary.revenue)
