"""`ey-platform up`: the platform as one long-running process, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from datetime import time as clock_time
from pathlib import Path

import duckdb
import pytest

from ey_platform.pipelines.platform import next_run
from ey_platform.source.data import Catalog
from ey_platform.source.server import create_app, serve_in_thread


def test_next_run_is_today_if_still_ahead_else_tomorrow() -> None:
    morning = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    assert next_run(morning, clock_time(2, 0)) == datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    evening = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    assert next_run(evening, clock_time(2, 0)) == datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


@pytest.mark.slow
def test_up_runs_every_part_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serve_in_thread(create_app(Catalog(), live_rate=5)) as url:
        env = {**os.environ, "EYP_STREAM__POLL_INTERVAL": "1", "EYP_STREAM__TRANSFORM_EVERY": "0.1"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ey_platform",
                "up",
                "--now",
                "--api-url",
                url,
                "--data-dir",
                str(data),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        time.sleep(25)  # a batch, two transforms and many polls
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=60)
    assert proc.returncode == 0, log
    for step in (
        "up.started",
        "batch.done",
        "stream.poll",
        "transform.done",
        "stream.consume",
        "up.stopped",
    ):
        assert step in log, step
    assert log.count("transform.done") >= 2
    assert "Traceback" not in log
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        (facts,) = con.execute("SELECT count(*) FROM bq_analytics.fact_orders").fetchone()
        (events,) = con.execute("SELECT count(*) FROM bq_raw.carts_events").fetchone()
    assert facts > 0 and events >= 7
