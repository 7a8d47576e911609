"""The star schema, built by dbt on a real DuckDB file from data the pipelines landed."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from ey_platform.backends import make_warehouse
from ey_platform.ops.freshness import freshness_limits
from ey_platform.settings import Settings, load_settings
from ey_platform.source.client import FakeStoreClient
from ey_platform.source.data import Catalog
from ey_platform.source.server import create_app, serve_in_thread
from ey_platform.transform import (
    BUILD,
    TransformError,
    build_and_publish,
    dbt_environment,
    run_dbt,
    source_freshness,
)
from ey_platform.warehouse.base import QualityResult
from ey_platform.wiring import run_batch, stream_parts
from tests.contract.conftest import emulator_env  # noqa: F401  (the emulators' settings, a fixture)

pytestmark = pytest.mark.slow


@dataclass
class Platform:
    cfg: Settings
    catalog: Catalog

    def batch(self) -> None:
        run_batch(self.cfg, datetime.now(UTC).date())

    def stream(self) -> None:
        with stream_parts(self.cfg) as parts:
            parts.poller.poll_once()
            parts.consumer.run(drain=True)

    def transform(self) -> None:
        """Build and publish, as ``run_transform`` does (without its freshness check and
        records, which have tests of their own)."""
        build_and_publish(self.cfg, make_warehouse(self.cfg), quiet=True)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return make_warehouse(self.cfg).query(sql)

    def everything(self) -> None:
        self.batch()
        self.stream()
        self.transform()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    app = create_app(Catalog())
    with serve_in_thread(app) as url:
        yield Platform(
            load_settings(api_url=url, data_dir=tmp_path / "data"), app.state.fakestore.catalog
        )


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ey_platform", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **env},
    )


def _products(catalog: Catalog) -> dict[int, dict[str, Any]]:
    return {pid: orjson.loads(row) for pid, row in catalog.products.rows.items()}


def _carts(catalog: Catalog) -> dict[int, dict[str, Any]]:
    return {cid: orjson.loads(row) for cid, row in catalog.carts.rows.items()}


def test_one_row_per_cart_line_and_revenue_at_the_price_of_the_day(platform: Platform) -> None:
    platform.everything()
    products, carts = _products(platform.catalog), _carts(platform.catalog)
    lines = [
        (c["id"], n, line) for c in carts.values() for n, line in enumerate(c["products"], start=1)
    ]
    expected = sum(
        Decimal(str(products[ln["productId"]]["price"])) * ln["quantity"] for _, _, ln in lines
    )
    facts = platform.rows(
        "SELECT cart_id, line_number, quantity, unit_price, line_amount "
        "FROM bq_analytics.fact_orders ORDER BY cart_id, line_number"
    )
    assert [(c, n) for c, n, *_ in facts] == [(c, n) for c, n, _ in lines]
    assert sum(row[4] for row in facts) == expected
    for (_, _, line), row in zip(lines, facts, strict=True):
        assert row[2] == line["quantity"]
        assert row[3] == Decimal(str(products[line["productId"]]["price"]))
    (orders,) = platform.rows(
        "SELECT count(*), sum(order_total) FROM bq_analytics.fact_order_totals"
    )
    assert orders == (len(carts), expected)


def test_a_rebuild_raises_no_warning(platform: Platform) -> None:
    platform.everything()  # the first build creates the snapshot, the second merges into it
    outcome = run_dbt(platform.cfg, *BUILD, quiet=True)
    assert outcome.warnings == []
    assert outcome.passed > 20


def test_every_test_of_a_build_is_a_quality_result(platform: Platform) -> None:
    platform.batch()
    platform.stream()
    outcome = run_dbt(platform.cfg, *BUILD, quiet=True)
    results = outcome.quality("r1")
    assert len(results) == sum(node.kind == "test" for node in outcome.nodes) > 25
    assert {(r.status, r.observed, r.expected, r.detail) for r in results} == {
        ("pass", "0 failing rows", "0 failing rows", None)
    }
    assert {(r.run_id, r.job) for r in results} == {("r1", "transform")}
    entities = {r.check_name: r.entity for r in results}
    assert {name: entities[name] for name in entities if name.startswith("row_count_")} == {
        f"row_count_{mart}": mart
        for mart in ("dim_products", "dim_users", "fact_orders", "fact_order_totals")
    }
    assert entities["source_not_null_bq_raw_carts_events_event_id"] == "carts_events"
    assert entities["unique_dim_users_user_key"] == "dim_users"


def test_the_dbt_unit_tests_pass(platform: Platform) -> None:
    platform.everything()
    outcome = run_dbt(platform.cfg, "test", "--select", "test_type:unit", quiet=True)
    assert outcome.passed == 3
    tested = sorted((r.entity, r.status) for r in outcome.quality("r1"))
    assert tested == [
        ("fact_orders", "pass"),
        ("fact_orders", "pass"),
        ("int_products_latest", "pass"),
    ]


def test_an_edited_cart_changes_its_lines_and_a_deleted_cart_leaves(platform: Platform) -> None:
    platform.everything()
    carts = platform.catalog.carts
    edited = orjson.loads(carts.rows[3])
    edited["products"] = [{"productId": 7, "quantity": 9}]
    carts.put(edited)
    carts.delete(5)
    platform.stream()
    platform.transform()
    assert platform.rows(
        "SELECT line_number, quantity FROM bq_analytics.fact_orders WHERE cart_id = 3"
    ) == [(1, 9)]
    assert platform.rows("SELECT count(*) FROM bq_analytics.fact_orders WHERE cart_id = 5") == [
        (0,)
    ]
    assert platform.rows("SELECT count(DISTINCT cart_id) FROM bq_analytics.fact_orders") == [(6,)]


def _land_state(cfg: Settings, cart: dict[str, Any], version: int, extracted: datetime) -> None:
    """One event of ``cart`` in bq_raw.carts_events, as the consumer lands it."""
    row = [
        uuid.uuid4().hex,
        cart["id"],
        version,
        orjson.dumps(cart).decode(),
        extracted,
        extracted,
        uuid.uuid4().hex,
        extracted,
    ]
    with make_warehouse(cfg).connect() as con:  # type: ignore[attr-defined]
        con.execute(
            "INSERT INTO bq_raw.carts_events (event_id, event_type, schema_version, cart_id, "
            "cart_version, content_hash, cart, extracted_at, published_at, _bus_message_id, "
            "_bus_publish_time, _loaded_at, _event_date) "
            "VALUES (?, 'cart_updated', 1, ?, ?, 'restarted', ?, ?, ?, ?, ?, now(), today())",
            row,
        )


def test_the_last_observed_state_wins_when_versions_restart(platform: Platform) -> None:
    """A poller that lost its memory publishes carts again from version 1: fact_orders
    takes each cart's state extracted last (bq_raw.cart_states), not its highest version."""
    platform.everything()

    def lines(cart_id: int) -> list[tuple[Any, ...]]:
        return platform.rows(
            "SELECT line_number, quantity FROM bq_analytics.fact_orders "
            f"WHERE cart_id = {cart_id} ORDER BY line_number"  # SQL promises no order else
        )

    carts, kept, now = _carts(platform.catalog), lines(4), datetime.now(UTC)
    restarted = {**carts[3], "products": [{"productId": 7, "quantity": 9}]}
    _land_state(platform.cfg, restarted, version=1, extracted=now + timedelta(minutes=1))
    stale = {**carts[4], "products": [{"productId": 7, "quantity": 8}]}
    _land_state(platform.cfg, stale, version=99, extracted=now - timedelta(days=1))
    platform.transform()
    assert lines(3) == [(1, 9)]
    assert lines(4) == kept


def test_a_price_change_makes_a_new_version_and_old_orders_keep_their_price(
    platform: Platform,
) -> None:
    platform.everything()
    old_price = Decimal(str(_products(platform.catalog)[1]["price"]))
    product = orjson.loads(platform.catalog.products.rows[1])
    product["price"] = float(old_price) + 100
    platform.catalog.products.put(product)
    platform.batch()  # same day: the day is replaced with the new content
    ordered = datetime.now(UTC) + timedelta(seconds=2)  # after the batch saw the new price
    cart = {
        "id": 8,
        "userId": 1,
        "date": ordered.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "products": [{"productId": 1, "quantity": 1}],
        "__v": 0,
    }
    platform.catalog.carts.put(cart)
    platform.stream()
    platform.transform()
    versions = platform.rows(
        "SELECT version_number, price, is_current FROM bq_analytics.dim_products "
        "WHERE product_id = 1 ORDER BY version_number"
    )
    assert versions == [(1, old_price, False), (2, old_price + 100, True)]
    prices = dict(
        platform.rows(
            "SELECT f.cart_id, f.unit_price FROM bq_analytics.fact_orders f "
            "JOIN bq_analytics.dim_products p USING (product_key) "
            "WHERE p.product_id = 1"
        )
    )
    assert prices[8] == old_price + 100
    assert all(price == old_price for cart_id, price in prices.items() if cart_id != 8)
    assert len(prices) > 1


def test_a_product_gone_from_the_catalog_is_closed_and_keeps_its_past_orders(
    platform: Platform,
) -> None:
    platform.everything()
    lines_of_20 = (
        "SELECT count(*) FROM bq_analytics.fact_orders f "
        "JOIN bq_analytics.dim_products p USING (product_key) WHERE p.product_id = 20"
    )
    ordered = platform.rows(lines_of_20)
    platform.catalog.products.delete(20)
    platform.batch()  # same day: the day is replaced without product 20
    before = datetime.now(UTC).replace(tzinfo=None)
    platform.transform()
    after = datetime.now(UTC).replace(tzinfo=None)
    [(is_current, valid_to)] = platform.rows(
        "SELECT is_current, valid_to FROM bq_analytics.dim_products WHERE product_id = 20"
    )
    assert is_current is False
    assert before - timedelta(seconds=1) <= valid_to <= after  # closed when dbt saw it go
    assert ordered[0][0] > 0
    assert platform.rows(lines_of_20) == ordered


def test_a_failing_build_names_what_failed(tmp_path: Path) -> None:
    cfg = load_settings(data_dir=tmp_path / "empty")
    make_warehouse(cfg).setup()  # raw tables exist but are empty: the snapshot has nothing
    make_warehouse(cfg).query("SELECT 1")
    with pytest.raises(TransformError, match=r"dbt build failed: .*(stg_|products_snapshot)"):
        run_dbt(cfg, "bogus-command-that-does-not-exist") if False else _break_and_build(cfg)


def _break_and_build(cfg: Settings) -> None:
    wh = make_warehouse(cfg)
    with wh.connect() as con:  # type: ignore[attr-defined]
        con.execute("DROP TABLE bq_raw.users")
    run_dbt(cfg, "build", quiet=True)


def test_docs_generate_a_static_site_with_lineage(platform: Platform) -> None:
    platform.everything()
    result = _cli("docs", "--data-dir", str(platform.cfg.data_dir))
    assert result.returncode == 0, result.stderr
    site = platform.cfg.data_dir.resolve() / "dbt" / "target" / "static_index.html"
    assert site.stat().st_size > 100_000
    text = site.read_text()
    assert "fact_orders" in text and "products_snapshot" in text


def test_a_line_of_an_unknown_product_fails_the_build_at_the_contract(platform: Platform) -> None:
    platform.everything()
    platform.catalog.carts.put(
        {
            "id": 99,
            "userId": 1,
            "date": "2020-05-01T00:00:00.000Z",
            "products": [{"productId": 777, "quantity": 1}],
            "__v": 0,
        }
    )
    platform.stream()
    with pytest.raises(
        TransformError, match=r"fact_orders: .*NOT NULL constraint failed: .*product_key"
    ) as failed:
        platform.transform()
    assert failed.value.outcome is not None
    results = {r.check_name: r for r in failed.value.outcome.quality("r1")}
    assert results["row_count_dim_products"].status == "pass"
    # what tests fact_orders never ran (skipped): the failed build is the alert
    assert not any(r.entity in {"fact_orders", "fact_order_totals"} for r in results.values())
    assert {r.status for r in results.values()} == {"pass"}


def test_dataset_settings_move_every_layer(tmp_path: Path) -> None:
    from ey_platform.pipelines.demo import summarize

    app = create_app(Catalog())
    with serve_in_thread(app) as url:
        cfg = load_settings(
            api_url=url,
            data_dir=tmp_path / "data",
            warehouse={"raw_dataset": "landing", "analytics_dataset": "marts"},
        )
        Platform(cfg, app.state.fakestore.catalog).everything()
        with FakeStoreClient(url) as client:
            summary = summarize(make_warehouse(cfg), client)
    assert summary.reconciled and summary.source_carts == 7
    assert summary.events_table == "landing.carts_events"
    datasets = {"landing", "marts", "marts_build"}  # the build is named after the marts
    assert {name.split(".")[0] for _, name, _ in summary.layers} == datasets
    schemas = make_warehouse(cfg).query(
        "SELECT DISTINCT table_schema FROM information_schema.tables ORDER BY 1"
    )
    assert [s for (s,) in schemas] == sorted(datasets)


def test_duckdb_holds_one_row_per_event_id_by_itself(tmp_path: Path) -> None:
    """stg_cart_events skips its deduplication window on DuckDB (one_row_per_event in
    src/ey_platform/dbt/macros/one_row_per_event.sql) because the raw table's key makes a
    duplicate impossible. If that key goes, this fails, and the window must come back."""
    import duckdb

    from ey_platform.warehouse.duckdb import DuckDBWarehouse

    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.setup()
    row = (
        "('e' || repeat('0', 31), 'cart_deleted', 1, 1, 2, NULL, NULL, "
        "now(), now(), '1', now(), now(), today())"
    )
    with warehouse.connect() as con:
        con.execute(f"INSERT INTO bq_raw.carts_events VALUES {row}")
        with pytest.raises(duckdb.ConstraintException, match="event_id"):
            con.execute(f"INSERT INTO bq_raw.carts_events VALUES {row}")


@pytest.mark.parametrize("quiet", [False, True], ids=["progress", "quiet"])
def test_a_dbt_exception_is_one_error_line_and_no_traceback(tmp_path: Path, quiet: bool) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.write_bytes(b"not a DuckDB database\n" * 1000)
    result = _cli(
        "transform",
        *(["--quiet"] if quiet else []),
        "--data-dir",
        str(tmp_path / "data"),
        EYP_WAREHOUSE__DUCKDB__PATH=str(warehouse),
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "Encountered an error" not in result.stdout
    # The transform records its run in the warehouse first: the damage is found there,
    # before dbt starts, and named with what to do. Before the one error line, only the
    # log lines of the failed run (job.failed, its incident).
    *logged, line = result.stderr.splitlines()
    assert line.startswith(f"error: DuckDB file {warehouse} is damaged or not a DuckDB database")
    assert "restore it from a backup" in line
    assert all(" job=transform run_id=" in entry for entry in logged), logged
    assert "Running with dbt=" not in result.stdout


def _zero_a_header_block(path: Path) -> None:
    """A real warehouse file, damaged: DuckDB's error names the block it cannot trust."""
    make_warehouse(load_settings(warehouse={"duckdb": {"path": path}})).setup()
    with path.open("r+b") as f:
        f.seek(4096)
        f.write(bytes(4096))


class _Busy(logging.Handler):
    """Counts the transform's busy retries; at the first, lets ``holder`` go."""

    def __init__(self, holder: subprocess.Popen[str] | None = None) -> None:
        super().__init__()
        self.holder, self.retries = holder, 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() != "transform.busy":
            return
        self.retries += 1
        if self.holder is not None and self.holder.poll() is None:
            self.holder.communicate(timeout=30)  # closes its stdin: free before the retry


@pytest.fixture
def busy() -> Iterator[_Busy]:
    handler = _Busy()
    logger = logging.getLogger("ey_platform.transform")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_a_damaged_warehouse_fails_at_once(tmp_path: Path, busy: _Busy) -> None:
    cfg = load_settings(data_dir=tmp_path / "data", warehouse={"duckdb": {"lock_timeout": 10}})
    _zero_a_header_block(cfg.duckdb_path)
    with pytest.raises(TransformError, match=r"Corrupt database file: .* in block at location"):
        run_dbt(cfg, "run", "--select", "stg_users", quiet=True)
    assert busy.retries == 0


# Holds the file until its stdin closes.
HOLD = (
    "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
    "sys.stdin.read()"
)


def test_a_warehouse_another_process_holds_is_waited_for(
    tmp_path: Path, busy: _Busy, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_settings(data_dir=tmp_path / "data", warehouse={"duckdb": {"lock_timeout": 60}})
    make_warehouse(cfg).setup()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(cfg.duckdb_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    busy.holder = holder
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        outcome = run_dbt(cfg, "run", "--select", "stg_users", quiet=True)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()
    assert busy.retries == 1 and holder.returncode == 0  # released, not killed
    assert outcome.passed == 1 and outcome.failures == []
    assert "Traceback" not in capsys.readouterr().out  # dbt's report of the lock conflict


def test_another_process_opens_the_warehouse_once_a_transform_is_done(tmp_path: Path) -> None:
    """As after each transform of `ey-platform up`, which goes on running."""
    cfg = load_settings(data_dir=tmp_path / "data")
    make_warehouse(cfg).setup()
    run_dbt(cfg, "run", "--select", "stg_users", quiet=True)
    probe = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"
    opened = subprocess.run(
        [sys.executable, "-c", probe, str(cfg.duckdb_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert opened.returncode == 0, opened.stderr


def test_docs_log_no_node_count(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_warehouse(load_settings(data_dir=data)).setup()
    result = _cli("docs", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    [done] = [line for line in result.stderr.splitlines() if " transform.done " in line]
    assert "command=docs" in done and "seconds=" in done
    assert "passed=" not in done


def test_dbt_reads_the_query_limit_and_the_environment_from_the_settings() -> None:
    cfg = load_settings(
        environment="prod", warehouse={"bigquery": {"maximum_bytes_billed": 3 << 30}}
    )
    env = dbt_environment(cfg)
    assert env["EYP_WAREHOUSE__BIGQUERY__MAXIMUM_BYTES_BILLED"] == str(3 << 30)
    assert env["EYP_ENVIRONMENT"] == "prod"


def _move_loads_back(cfg: Settings, hours: int) -> None:
    """Every raw row loaded ``hours`` earlier than it was: a late batch, a quiet stream."""
    with make_warehouse(cfg).connect() as con:  # type: ignore[attr-defined]
        for table in ("products", "users", "carts_events"):
            con.execute(
                f"UPDATE bq_raw.{table} SET _loaded_at = _loaded_at - INTERVAL {hours} HOUR"
            )


def _freshness(cfg: Settings) -> dict[str, QualityResult]:
    return {r.entity: r for r in source_freshness(cfg, run_id="r1")}


def test_source_freshness_judges_the_age_of_the_loads(platform: Platform) -> None:
    platform.everything()
    fresh = _freshness(platform.cfg)
    assert {t: r.status for t, r in fresh.items()} == dict.fromkeys(
        ("products", "users", "carts_events"), "pass"
    )
    assert {(r.check_name, r.run_id, r.job) for r in fresh.values()} == {
        ("freshness", "r1", "transform")
    }
    assert fresh["users"].expected == "warn > 26 h, error > 36 h"
    assert fresh["carts_events"].expected == "warn > 24 h, no error"
    assert (fresh["users"].detail or "").startswith("max_loaded_at 20")
    report = platform.cfg.data_dir.resolve() / "dbt" / "target" / "sources.json"
    assert len(orjson.loads(report.read_bytes())["results"]) == 3

    _move_loads_back(platform.cfg, 30)
    late = _freshness(platform.cfg)
    assert {t: r.status for t, r in late.items()} == dict.fromkeys(
        ("products", "users", "carts_events"), "warn"
    )
    assert re.fullmatch(r"30 h( \d+ min)?", late["products"].observed or "")

    _move_loads_back(platform.cfg, 18)  # two days late
    stale = _freshness(platform.cfg)
    assert {t: r.status for t, r in stale.items()} == {
        "products": "fail",
        "users": "fail",
        "carts_events": "warn",  # no cart changed for two days: worth a look, no more
    }
    assert stale["users"].observed == "2 d"


def test_a_source_dbt_cannot_query_is_a_failed_freshness_check(tmp_path: Path) -> None:
    cfg = load_settings(data_dir=tmp_path / "data")
    make_warehouse(cfg).setup()
    with make_warehouse(cfg).connect() as con:  # type: ignore[attr-defined]
        con.execute("DROP TABLE bq_raw.users")
    results = _freshness(cfg)
    assert (results["users"].status, results["users"].observed) == ("fail", "not measured")
    assert "users does not exist" in (results["users"].detail or "")
    assert (results["products"].status, results["products"].observed) == ("fail", "never loaded")
    assert results["carts_events"].status == "warn"


def test_source_freshness_that_cannot_run_raises(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.write_bytes(b"not a DuckDB database\n" * 1000)
    cfg = load_settings(data_dir=tmp_path / "data", warehouse={"duckdb": {"path": warehouse}})
    with pytest.raises(TransformError, match=r"^dbt source freshness failed: .*not a valid DuckDB"):
        source_freshness(cfg, run_id="r1")


def test_the_limits_health_reads_are_the_ones_dbt_reads(tmp_path: Path) -> None:
    cfg = load_settings(data_dir=tmp_path / "data")
    run_dbt(cfg, "parse", quiet=True)
    manifest = orjson.loads((cfg.data_dir.resolve() / "dbt/target/manifest.json").read_bytes())

    def limit(threshold: dict[str, Any] | None, key: str) -> timedelta | None:
        time_ = (threshold or {}).get(key) or {}
        if time_.get("count") is None:
            return None
        return timedelta(**{f"{time_['period']}s": time_["count"]})

    dbt_limits = {
        source["name"]: (
            limit(source["freshness"], "warn_after"),
            limit(source["freshness"], "error_after"),
        )
        for source in manifest["sources"].values()
    }
    assert freshness_limits() == dbt_limits
    assert dbt_limits["products"] == (timedelta(hours=26), timedelta(hours=36))


ROW_COUNT_GATES = "test_name:holds_latest_batch test_name:lines_of_live_carts"


def test_a_mart_shrunk_or_emptied_fails_its_row_count_gate(platform: Platform) -> None:
    """The built marts lose rows behind dbt's back, as a model whose logic drops rows
    would leave them: the gates, run alone on the build schema, name each one."""
    platform.everything()
    with make_warehouse(platform.cfg).connect() as con:  # type: ignore[attr-defined]
        con.execute("DELETE FROM bq_analytics_build.dim_users WHERE user_id > 7")
        con.execute("DELETE FROM bq_analytics_build.dim_products")
        con.execute(
            "DELETE FROM bq_analytics_build.fact_orders WHERE cart_id = 2 AND line_number = 1"
        )
    with pytest.raises(TransformError, match=r"^dbt test failed: ") as failed:
        run_dbt(platform.cfg, "test", "--select", ROW_COUNT_GATES, quiet=True)
    message = str(failed.value)
    assert "row_count_dim_users: Got 3 results, configured to fail if != 0" in message
    assert "row_count_dim_products: Got 20 results" in message
    assert "row_count_fact_orders: Got 1 result," in message
    assert failed.value.outcome is not None
    results = {r.check_name: r for r in failed.value.outcome.quality("r1")}
    assert {name: (r.entity, r.status, r.observed) for name, r in results.items()} == {
        "row_count_dim_users": ("dim_users", "fail", "3 failing rows"),
        "row_count_dim_products": ("dim_products", "fail", "20 failing rows"),
        "row_count_fact_orders": ("fact_orders", "fail", "1 failing row"),
        "row_count_fact_order_totals": ("fact_order_totals", "pass", "0 failing rows"),
    }
    assert results["row_count_dim_users"].detail == "Got 3 results, configured to fail if != 0"
    assert results["row_count_dim_users"].expected == "0 failing rows"


def test_a_batch_that_lost_records_moves_the_gate_with_it(platform: Platform) -> None:
    """The gates compare a mart with the raw layer it is built from: a day the API
    answered with fewer users builds a smaller mart, and that is no failure of the
    transform (the batch's volume guard judges the day)."""
    platform.everything()
    platform.catalog.users.delete(10)
    platform.batch()  # same day: the day is replaced with 9 users
    outcome = run_dbt(platform.cfg, *BUILD, quiet=True)
    assert platform.rows("SELECT count(*) FROM bq_analytics_build.dim_users") == [(9,)]
    gates = {r.check_name: r.status for r in outcome.quality("r1") if "row_count" in r.check_name}
    assert gates == dict.fromkeys(
        [
            f"row_count_{m}"
            for m in ("dim_products", "dim_users", "fact_orders", "fact_order_totals")
        ],
        "pass",
    )


def test_the_gates_and_freshness_on_the_bigquery_emulator(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    emulator_env: dict[str, str],  # noqa: F811  (the fixture imported above)
) -> None:
    """The generic tests and freshness read BigQuery's SQL as they read DuckDB's."""
    tag = uuid.uuid4().hex[:10]
    raw, marts = f"raw_{tag}", f"analytics_{tag}"
    for key, value in emulator_env.items():
        monkeypatch.setenv(key, value)
    app = create_app(Catalog())
    with serve_in_thread(app) as url:
        cfg = load_settings(
            api_url=url,
            data_dir=tmp_path / "data",
            lake={"gcs": {"bucket": f"eyp-test-{tag}"}},
            warehouse={"raw_dataset": raw, "analytics_dataset": marts},
            bus={
                "topic": f"events-{tag}",
                "subscription": f"events-{tag}-sub",
                "dead_letter_topic": f"events-{tag}-dlq",
            },
        )
        platform = Platform(cfg, app.state.fakestore.catalog)
        platform.everything()
        assert {r.status for r in _freshness(cfg).values()} == {"pass"}
        for table in ("products", "users", "carts_events"):
            platform.rows(
                f"UPDATE {raw}.{table} SET _loaded_at = "
                "TIMESTAMP_SUB(_loaded_at, INTERVAL 48 HOUR) WHERE TRUE"
            )
        stale = _freshness(cfg)
        assert {t: r.status for t, r in stale.items()} == {
            "products": "fail",
            "users": "fail",
            "carts_events": "warn",
        }
        built = f"{marts}_build"  # where dbt builds and tests
        platform.rows(f"DELETE FROM {built}.dim_users WHERE user_id > 7")
        platform.rows(f"DELETE FROM {built}.fact_orders WHERE cart_id = 2 AND line_number = 1")
        with pytest.raises(TransformError, match="row_count_") as failed:
            run_dbt(cfg, "test", "--select", ROW_COUNT_GATES, quiet=True)
    assert failed.value.outcome is not None
    results = {r.check_name: (r.status, r.observed) for r in failed.value.outcome.quality("r1")}
    assert results == {
        "row_count_dim_users": ("fail", "3 failing rows"),
        "row_count_dim_products": ("pass", "0 failing rows"),
        "row_count_fact_orders": ("fail", "1 failing row"),
        "row_count_fact_order_totals": ("pass", "0 failing rows"),
    }
