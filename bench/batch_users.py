"""API -> validated lake -> DuckDB raw for N users, ours against dlt, in child processes.

``python -m bench.batch_users WAY URL WORKDIR`` prints one JSON line. Ways:

- ``platform``: :class:`BatchPipeline` (stream, validate, land JSONL parts, stage into
  DuckDB while extracting, swap the day in one transaction);
- ``dlt-jsonl`` / ``dlt-parquet``: dlt loading the same answer into DuckDB with that
  loader file format, the records fetched with httpx (``response.json()``) and yielded
  as one list. dlt flattens nested objects into columns; parquet is its fastest path.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.harness import peak_rss_mb


def platform_way(url: str, workdir: Path) -> dict[str, Any]:
    from ey_platform.runtime import tune_allocator
    from ey_platform.settings import load_settings
    from ey_platform.source.client import FakeStoreClient
    from ey_platform.wiring import batch_pipeline

    tune_allocator()  # the process as `ey-platform batch` runs it
    with FakeStoreClient(url) as client:
        pipeline = batch_pipeline(load_settings(api_url=url, data_dir=workdir), client)
        start = time.perf_counter()
        (result,) = pipeline.run(["users"], date(2026, 1, 1))
        seconds = time.perf_counter() - start
    assert result.loaded == result.extracted, result
    return {"records": result.loaded, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def dlt_way(url: str, workdir: Path, file_format: str) -> dict[str, Any]:
    import os

    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    import dlt
    import httpx

    @dlt.resource(name="users", write_disposition="replace")
    def users() -> Any:
        yield httpx.get(f"{url}/users", timeout=300).json()

    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{file_format}",
        pipelines_dir=str(workdir / "dlt"),
        destination=dlt.destinations.duckdb(str(workdir / f"dlt-{file_format}.duckdb")),
        dataset_name="bq_raw",
    )
    start = time.perf_counter()
    pipeline.run(users(), loader_file_format=file_format)
    seconds = time.perf_counter() - start
    with pipeline.sql_client() as sql:
        (count,) = sql.execute_sql("SELECT count(*) FROM users")[0]
    return {"records": count, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


if __name__ == "__main__":
    way, url, workdir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    workdir.mkdir(parents=True, exist_ok=True)
    if way == "platform":
        out = platform_way(url, workdir)
    else:
        out = dlt_way(url, workdir, way.removeprefix("dlt-"))
    print(json.dumps(out))
