"""`make demo-gcp` prints what `make demo` prints: the same job through the production
backends (on their emulators) reaches the same figures, and `ey-platform query` on the
published marts of each reproduces them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.slow


# The demo's revenue by category, as a BI user would ask the published marts for it.
REVENUE = """SELECT p.category, sum(f.line_amount) AS revenue, sum(f.quantity) AS items
FROM fact_orders AS f JOIN dim_products AS p ON p.product_key = f.product_key
GROUP BY p.category ORDER BY p.category"""
# A row of the demo's "Revenue by category" table: category, items, revenue.
_ROW = re.compile(r"^│ ([a-z' ]+?) +│ (\d+) +│ ([\d,]+\.\d\d) +│$", re.M)


def _platform(tmp_path: Path, extra_env: dict[str, str], *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EYP_")}
    env |= {"EYP_DATA_DIR": str(tmp_path / "data"), **extra_env}
    done = subprocess.run(
        [sys.executable, "-m", "ey_platform", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _summary(tmp_path: Path, extra_env: dict[str, str]) -> str:
    shown = _platform(tmp_path, extra_env, "demo")
    return shown[shown.index("Rows at every layer") : shown.index("dashboard: ")]


def _queried_revenue(tmp_path: Path, extra_env: dict[str, str]) -> list[tuple[str, int, str]]:
    rows = orjson.loads(_platform(tmp_path, extra_env, "query", REVENUE, "--format", "json"))
    return [(r["category"], r["items"], f"{Decimal(str(r['revenue'])):,.2f}") for r in rows]


def test_the_demo_on_the_emulators_prints_the_local_figures_and_query_reproduces_them(
    tmp_path: Path, emulator_env: dict[str, str]
) -> None:
    local = _summary(tmp_path / "local", {})
    assert "reconciled" in local and "total" in local
    assert _summary(tmp_path / "gcp", emulator_env) == local
    revenue = [(c, int(items), amount) for c, items, amount in _ROW.findall(local)]
    assert len(revenue) == 4  # the four categories of the bundled catalog
    assert _queried_revenue(tmp_path / "local", {}) == revenue
    assert _queried_revenue(tmp_path / "gcp", emulator_env) == revenue
    # The dashboard reads BigQuery's published marts as it reads DuckDB's.
    total = sum(Decimal(amount.replace(",", "")) for _, _, amount in revenue)
    for where, env in ((tmp_path / "local", {}), (tmp_path / "gcp", emulator_env)):
        page = Path(_platform(where, env, "dashboard").strip().removeprefix("dashboard: "))
        assert f'id="revenue-total">{total:.2f}<' in page.read_text()
