"""``dbt build`` and the publication of the marts over a loaded warehouse against an
empty dbt project, same machine, same run: ``python -m bench.dbt_build WAY DATA_DIR``
(WAY: ``platform`` or ``empty``).

Each project keeps its own dbt target folder and is built once before it is timed, so
both are measured as a scheduled transform runs: a fresh process (the parent times it
whole, Python and dbt start-up included), with dbt's partial parsing warm.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def build(data: Path, empty: bool) -> dict[str, Any]:
    from ey_platform.backends import make_warehouse
    from ey_platform.runtime import tune_allocator
    from ey_platform.settings import load_settings
    from ey_platform.transform import BUILD, DBT_PROJECT, MARTS, run_dbt

    tune_allocator()  # as `ey-platform transform` runs (both projects alike)

    warehouse = {"duckdb_path": data / "warehouse.duckdb"}
    if empty:  # the same profile and warehouse, no model: dbt's fixed cost
        project = data / "empty-dbt-project"
        project.mkdir(exist_ok=True)
        (project / "dbt_project.yml").write_text(
            "name: empty\nversion: '1.0'\nconfig-version: 2\nprofile: ey_data_platform\n"
        )
        (project / "profiles.yml").write_text((DBT_PROJECT / "profiles.yml").read_text())
        cfg = load_settings(data_dir=project, warehouse=warehouse)
    else:
        project, cfg = DBT_PROJECT, load_settings(data_dir=data, warehouse=warehouse)
    start = time.perf_counter()
    outcome = run_dbt(cfg, *BUILD, quiet=True, project=project)
    built = time.perf_counter()
    if not empty:  # the platform's transform publishes what it built (the serving file too)
        make_warehouse(cfg).publish(MARTS)
    done = time.perf_counter()
    return {"seconds": done - start, "publish_seconds": done - built, "nodes": outcome.passed}


def load(url: str, data: Path) -> dict[str, Any]:
    """Products and users of the bundled server into ``data``, as the daily batch does."""
    from datetime import UTC, datetime

    from ey_platform.settings import load_settings
    from ey_platform.wiring import run_batch

    results = run_batch(load_settings(api_url=url, data_dir=data), datetime.now(UTC).date())
    return {"records": sum(r.loaded for r in results)}


if __name__ == "__main__":
    if sys.argv[1] == "load":
        print(json.dumps(load(sys.argv[2], Path(sys.argv[3]))))
    else:
        print(json.dumps(build(Path(sys.argv[2]), sys.argv[1] == "empty")))
