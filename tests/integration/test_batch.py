"""The daily batch against the bundled server, a real lake folder and a real DuckDB file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from ey_platform.errors import LakeError, PipelineBusy
from ey_platform.lake.base import manifests
from ey_platform.lake.local import LocalLake
from ey_platform.locks import job_lock
from ey_platform.pipelines.batch import BatchPipeline
from ey_platform.settings import load_settings
from ey_platform.source.client import FakeStoreClient
from ey_platform.warehouse.duckdb import DuckDBWarehouse
from ey_platform.wiring import batch_pipeline
from tests.conftest import FakeStore

DAY = date(2026, 11, 26)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


_clients: list[FakeStoreClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def pipeline(
    data_dir: Path, url: str | None, warehouse: DuckDBWarehouse | None = None
) -> BatchPipeline:
    client = FakeStoreClient(url) if url else None
    if client:
        _clients.append(client)
    if warehouse is not None:  # one that misbehaves on purpose
        return BatchPipeline(LocalLake(data_dir / "lake"), warehouse, client)
    settings = load_settings(data_dir=data_dir, warehouse={"duckdb": {"lock_timeout": 5}})
    return batch_pipeline(settings, client)


RAW_COLUMNS = (
    "id, _raw, _ingestion_date, _extracted_at, _loaded_at, _source_file, _run_id, _record_hash"
)


def table(data_dir: Path, name: str, order: str = "id") -> list[tuple[Any, ...]]:
    """Rows of a raw table (columns as RAW_COLUMNS) or of a bookkeeping table (*)."""
    columns = "*" if name.startswith("_") else RAW_COLUMNS
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(f"SELECT {columns} FROM bq_raw.{name} ORDER BY {order}").fetchall()


def lake_files(data_dir: Path, pattern: str) -> list[Path]:
    return sorted((data_dir / "lake").rglob(pattern))


def test_one_run_lands_20_products_and_10_users(fakestore: FakeStore, data_dir: Path) -> None:
    results = pipeline(data_dir, fakestore.url).run(["products", "users"], DAY)
    assert [(r.entity, r.status, r.extracted, r.landed, r.loaded) for r in results] == [
        ("products", "loaded", 20, 20, 20),
        ("users", "loaded", 10, 10, 10),
    ]
    products = table(data_dir, "products")
    assert [row[0] for row in products] == list(range(1, 21))
    raw = orjson.loads(products[0][1])
    assert set(raw) == {"id", "title", "price", "description", "category", "image", "rating"}
    assert products[0][2] == DAY  # _ingestion_date
    assert products[0][6] == results[0].run_id  # _run_id
    users = table(data_dir, "users")
    assert len(users) == 10
    part = lake_files(data_dir, "users-*-p00000.jsonl")[0]
    assert part.parent.name == f"ingestion_date={DAY}"
    assert not any("password" in orjson.loads(row[1]) for row in users)
    assert b"password" not in part.read_bytes()
    runs = table(data_dir, "_pipeline_runs", "entity")
    assert [(r[2], r[6], r[8], r[9], r[11], r[12]) for r in runs] == [
        ("products", "loaded", 20, 20, 20, 20),
        ("users", "loaded", 10, 10, 10, 10),
    ]


def test_manifest_describes_the_run(fakestore: FakeStore, data_dir: Path) -> None:
    pipeline(data_dir, fakestore.url).run(["products"], DAY)
    (manifest,) = manifests(LocalLake(data_dir / "lake"), "products", DAY)
    part = lake_files(data_dir, "products-*.jsonl")[0]
    import hashlib

    assert manifest["records"] == 20
    assert manifest["source_url"] == f"{fakestore.url}/products"
    assert manifest["parts"][0]["sha256"] == hashlib.sha256(part.read_bytes()).hexdigest()
    assert manifest["parts"][0]["bytes"] == part.stat().st_size
    assert manifest["extracted_at"].startswith("20")


def test_three_runs_same_day_identical_tables_three_lake_files(
    fakestore: FakeStore, data_dir: Path
) -> None:
    statuses = []
    snapshots = []
    for _ in range(3):
        statuses.append(
            [r.status for r in pipeline(data_dir, fakestore.url).run(["products", "users"], DAY)]
        )
        snapshots.append((table(data_dir, "products"), table(data_dir, "users")))
    assert statuses == [
        ["loaded", "loaded"],
        ["unchanged", "unchanged"],
        ["unchanged", "unchanged"],
    ]
    assert snapshots[0] == snapshots[1] == snapshots[2]
    assert len(lake_files(data_dir, "products-*-p00000.jsonl")) == 3
    assert len(lake_files(data_dir, "users-*.manifest.json")) == 3
    assert all(p.stat().st_mode & 0o222 == 0 for p in lake_files(data_dir, "*.jsonl"))


def test_changed_content_replaces_the_day(fakestore: FakeStore, data_dir: Path) -> None:
    pipeline(data_dir, fakestore.url).run(["products"], DAY)
    product = orjson.loads(fakestore.state.catalog.products.rows[3])
    product["price"] = 1234.5
    fakestore.state.catalog.products.put(product)
    (result,) = pipeline(data_dir, fakestore.url).run(["products"], DAY)
    assert result.status == "loaded"
    rows = table(data_dir, "products")
    assert len(rows) == 20 and {r[6] for r in rows} == {result.run_id}
    assert orjson.loads(rows[2][1])["price"] == 1234.5


def test_a_wrong_type_is_quarantined_with_its_reason(fakestore: FakeStore, data_dir: Path) -> None:
    bad = orjson.loads(fakestore.state.catalog.products.rows[5])
    bad["price"] = "cheap"
    fakestore.state.catalog.products.put(bad)
    (result,) = pipeline(data_dir, fakestore.url).run(["products"], DAY)
    assert (result.extracted, result.quarantined, result.loaded) == (20, 1, 19)
    assert 5 not in [row[0] for row in table(data_dir, "products")]
    (line,) = sorted((data_dir / "lake" / "quarantine").rglob("products-*.jsonl"))
    rejected = orjson.loads(line.read_bytes())
    assert rejected["record"] == bad
    assert rejected["reason"].startswith("price: Input should be a valid decimal")
    (row,) = table(data_dir, "_quarantine", "entity")
    assert row[0] == "products" and row[1] == DAY and "price" in row[3]
    assert orjson.loads(row[4])["id"] == 5


class FailsInsideTheSwap(DuckDBWarehouse):
    """The real DuckDB warehouse, with a failure injected after the day's rows were
    deleted and the new ones inserted, before the commit."""

    def begin_load(self, meta: Any) -> Any:
        load = super().begin_load(meta)

        def boom(con: Any) -> None:
            raise RuntimeError("injected failure inside the load transaction")

        load._swap_quarantine = boom  # type: ignore[method-assign]
        return load


def test_a_load_leaves_the_database_settings_as_it_found_them(
    fakestore: FakeStore, data_dir: Path
) -> None:
    warehouse = DuckDBWarehouse(data_dir / "warehouse.duckdb", lock_timeout=5)
    warehouse.setup()
    settings = "SELECT current_setting('threads'), current_setting('memory_limit')"
    # A connection held across the load keeps the database instance, and with it the
    # settings the load changes for itself (they are database-wide in DuckDB).
    with warehouse.connect() as held:
        before = held.execute(settings).fetchall()
        pipeline(data_dir, fakestore.url, warehouse).run(["users"], DAY)
        assert held.execute(settings).fetchall() == before
    # and the check can fail: the load's own limit is not DuckDB's default
    probe = duckdb.connect()
    probe.execute("SET memory_limit = '256MB'")
    assert before[0][1] != probe.execute(settings).fetchall()[0][1]


def test_a_failure_between_landing_and_loading_keeps_the_previous_state(
    fakestore: FakeStore, data_dir: Path
) -> None:
    (first,) = pipeline(data_dir, fakestore.url).run(["users"], DAY)
    before = table(data_dir, "users")
    user = orjson.loads(fakestore.state.catalog.users.rows[2])
    user["phone"] = "changed"
    fakestore.state.catalog.users.put(user)
    failing = FailsInsideTheSwap(data_dir / "warehouse.duckdb")
    with pytest.raises(RuntimeError, match="injected failure"):
        pipeline(data_dir, fakestore.url, failing).run(["users"], DAY)
    assert table(data_dir, "users") == before  # rolled back: nothing half-written
    assert len(lake_files(data_dir, "users-*.manifest.json")) == 2  # the landing happened
    runs = table(data_dir, "_pipeline_runs", "started_at")
    assert runs[-1][6] == "failed" and "injected failure" in runs[-1][14]
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        stages = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '_stage%'"
        )
        assert stages.fetchall() == []
    (rerun,) = pipeline(data_dir, fakestore.url).run(["users"], DAY)
    assert rerun.status == "loaded"
    after = table(data_dir, "users")
    assert {r[6] for r in after} == {rerun.run_id} != {first.run_id}
    assert orjson.loads(after[1][1])["phone"] == "changed"


def test_from_lake_rebuilds_a_deleted_warehouse(fakestore: FakeStore, data_dir: Path) -> None:
    bad = orjson.loads(fakestore.state.catalog.users.rows[4])
    bad["id"] = "four"
    fakestore.state.catalog.users.rows[4] = orjson.dumps(bad)  # served in place of user 4
    pipeline(data_dir, fakestore.url).run(["products", "users"], DAY)
    original = {n: table(data_dir, n) for n in ("products", "users")}
    (data_dir / "warehouse.duckdb").unlink()
    results = pipeline(data_dir, None).run(["products", "users"], DAY, from_lake=True)
    assert [(r.status, r.loaded) for r in results] == [("loaded", 20), ("loaded", 9)]
    for name, rows in original.items():
        rebuilt = table(data_dir, name)
        drop_loaded_at = [(*r[:4], *r[5:]) for r in rows]
        assert [(*r[:4], *r[5:]) for r in rebuilt] == drop_loaded_at
    assert len(table(data_dir, "_quarantine", "entity")) == 1
    again = pipeline(data_dir, None).run(["users"], DAY, from_lake=True)
    assert again[0].status == "unchanged"


def test_from_lake_without_data_is_a_clear_error(data_dir: Path) -> None:
    with pytest.raises(LakeError, match="no committed products run in the lake for 2026-11-26"):
        pipeline(data_dir, None).run(["products"], DAY, from_lake=True)


def test_drifted_fields_are_kept_in_raw(fakestore: FakeStore, data_dir: Path) -> None:
    fakestore.faults("drift=1")
    pipeline(data_dir, fakestore.url).run(["products"], DAY)
    raw = orjson.loads(table(data_dir, "products")[0][1])
    assert raw["promo_code"] == "DRIFT-1" and isinstance(raw["price"], str)


def test_the_job_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    lock = tmp_path / "batch.lock"
    with job_lock(lock, "batch"):
        code = (
            "from ey_platform.locks import job_lock\nfrom pathlib import Path\n"
            f"with job_lock(Path({str(lock)!r}), 'batch'): pass"
        )
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode != 0
        assert f"another batch run is in progress (pid {os.getpid()}" in other.stderr
    with job_lock(lock, "batch"):
        pass  # released


def _batch_cli(url: str, data_dir: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "EYP_WAREHOUSE__DUCKDB__LOCK_TIMEOUT": "30"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ey_platform",
            "batch",
            "--api-url",
            url,
            "--data-dir",
            str(data_dir),
            "--date",
            str(DAY),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_two_concurrent_runs_do_not_corrupt(fakestore: FakeStore, data_dir: Path) -> None:
    fakestore.faults("latency=1")
    runs = [_batch_cli(fakestore.url, data_dir) for _ in range(2)]
    outcomes = [(p.wait(timeout=120), p.communicate()[1]) for p in runs]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 1], outcomes
    loser = next(err for code, err in outcomes if code == 1)
    assert "error: another batch run is in progress" in loser
    assert len(table(data_dir, "products")) == 20 and len(table(data_dir, "users")) == 10


@pytest.mark.slow
def test_batch_waits_for_another_duckdb_writer(fakestore: FakeStore, data_dir: Path) -> None:
    DuckDBWarehouse(data_dir / "warehouse.duckdb").setup()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import duckdb, sys, time\n"
                f"con = duckdb.connect({str(data_dir / 'warehouse.duckdb')!r})\n"
                "print('held', flush=True)\ntime.sleep(2)\ncon.close()\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    batch = _batch_cli(fakestore.url, data_dir, "--entity", "products")
    _, err = batch.communicate(timeout=60)
    assert batch.returncode == 0, err
    holder.communicate(timeout=10)
    assert len(table(data_dir, "products")) == 20


def test_cli_rejects_a_bad_date(data_dir: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ey_platform", "batch", "--date", "2026-13-01"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "error: --date: expected YYYY-MM-DD, got '2026-13-01'"


def test_pipeline_busy_is_a_platform_error() -> None:
    from ey_platform.errors import PlatformError

    assert issubclass(PipelineBusy, PlatformError)
