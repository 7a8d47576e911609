"""One process, several threads on one DuckDB file: what ``ey-platform up`` does (the
consumer, the batch and dbt each open the warehouse from a thread of their own)."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa

from ey_platform.warehouse.duckdb import DuckDBWarehouse


def test_threads_opening_the_warehouse_at_once_can_all_scan_arrow(tmp_path: Path) -> None:
    # Unserialised, DuckDB's Python client failed a third of such pairs with "Table
    # Function with name python_arrow_scan does not exist": the consumer of `up` died so.
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.setup()
    batch = pa.table({"n": [1, 2, 3]})
    errors: list[str] = []

    def scan(start: threading.Barrier) -> None:
        try:
            start.wait()
            with warehouse.connect() as con:  # nothing else holds the file: it is opened
                con.register("incoming", batch)
                assert con.execute("SELECT sum(n) FROM incoming").fetchall() == [(6,)]
                con.unregister("incoming")
        except Exception as exc:  # collected: a failed thread would only print it
            errors.append(f"{type(exc).__name__}: {exc}")

    for _ in range(60):
        start = threading.Barrier(2, timeout=10)
        threads = [threading.Thread(target=scan, args=(start,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []


def test_the_transform_holds_the_warehouse_open_so_dbt_only_joins_it(tmp_path: Path) -> None:
    # dbt-duckdb opens the file with a connect of its own, outside the opening lock:
    # held open around the run, the database is never created by dbt's thread.
    import subprocess
    import sys

    from ey_platform.settings import load_settings
    from ey_platform.transform import _opened_first

    settings = load_settings(data_dir=tmp_path)
    DuckDBWarehouse(settings.duckdb_path).setup()
    other = [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"]
    with _opened_first(settings):  # held by this process: another one is locked out
        held = subprocess.run([*other, str(settings.duckdb_path)], capture_output=True, text=True)
    assert held.returncode != 0 and "lock" in held.stderr.lower()
    after = subprocess.run([*other, str(settings.duckdb_path)], capture_output=True, text=True)
    assert after.returncode == 0, after.stderr  # and let go of afterwards
