"""`ey-platform up`: the platform as one long-running process, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ey_platform.errors import PlatformError
from ey_platform.pipelines.control import Stopper, run_both
from ey_platform.pipelines.platform import Scheduler, first_batch, next_run
from ey_platform.source.data import Catalog
from ey_platform.source.server import create_app, serve_in_thread


def test_next_run_is_today_if_still_ahead_else_tomorrow() -> None:
    morning = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    assert next_run(morning, clock_time(2, 0)) == datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    evening = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    assert next_run(evening, clock_time(2, 0)) == datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


def test_the_first_batch_catches_up_a_day_that_has_not_finished() -> None:
    at = clock_time(2, 0)
    morning = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    later = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    assert first_batch(morning, at, lambda day: False) == datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    assert first_batch(later, at, lambda day: False) == later  # down at 02:00: at once
    asked: list[date] = []
    assert first_batch(later, at, lambda day: asked.append(day) or True) == datetime(
        2026, 11, 27, 2, 0, tzinfo=UTC
    )
    assert asked == [date(2026, 11, 26)]


class _Idle:
    """A poller and a consumer that do nothing: the scheduler's own thread is tested."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def poll_once(self, *, allow_mass_delete: bool = False) -> None:
        pass

    def run(self) -> None:
        self.stopped.wait()

    def stop(self) -> None:
        self.stopped.set()


def _schedule(batch: Any, *, batch_now: bool = False, **options: Any) -> list[str]:
    """Run a scheduler with an idle poller and consumer until its first transform; what
    it did, in order (``batch`` appends its own entries)."""
    calls: list[str] = []
    idle, stopper = _Idle(), Stopper()

    def transform() -> None:
        calls.append("transform")
        stopper.stop()

    scheduler = Scheduler(
        idle,  # type: ignore[arg-type]
        idle,  # type: ignore[arg-type]
        lambda day: batch(day, calls),
        transform,
        poll_interval=60,
        transform_every=timedelta(hours=1),
        **options,
    )
    runner = threading.Thread(target=partial(scheduler.run, stopper, batch_now=batch_now))
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive()
    return calls


def test_a_failed_batch_is_retried_after_retry_after_then_transformed() -> None:
    def batch(day: date, calls: list[str]) -> None:
        calls.append("batch")
        if calls.count("batch") == 1:
            raise PlatformError("API down")

    calls = _schedule(
        batch,
        batch_now=True,
        batch_at=clock_time(2, 0),
        retry_after=timedelta(seconds=0.5),
    )
    assert calls == ["batch", "batch", "transform"]  # no transform after the failure


def test_a_part_that_dies_stops_up_with_its_error() -> None:
    class Dying(_Idle):
        def run(self) -> None:
            raise RuntimeError("Catalog Error:\n no such function")

    idle, dying, stopper = _Idle(), Dying(), Stopper()
    scheduler = Scheduler(
        idle,  # type: ignore[arg-type]
        dying,  # type: ignore[arg-type]
        lambda day: None,
        lambda: None,
        poll_interval=0.05,
        batch_at=clock_time(2, 0),
        transform_every=timedelta(hours=1),
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            scheduler.run(stopper)
        except BaseException as exc:
            failure.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive()  # the poller stopped too, not left polling alone
    assert stopper.event.is_set()
    assert [str(exc) for exc in failure] == [
        "up stopped: the consumer failed: Catalog Error: no such function"
    ]
    assert isinstance(failure[0], PlatformError)  # the CLI's one line and exit 1


def test_stream_run_stops_the_consumer_and_fails_when_the_poller_dies() -> None:
    class Broken(_Idle):
        def poll_once(self, *, allow_mass_delete: bool = False) -> None:
            raise KeyError("id")  # not a PlatformError: poll_every does not retry it

    consumer, failure = _Idle(), []

    def run() -> None:
        try:
            run_both(Broken(), consumer, 0.05, Stopper())  # type: ignore[arg-type]
        except BaseException as exc:
            failure.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive() and consumer.stopped.is_set()  # not consuming alone
    assert [str(exc) for exc in failure] == ["stream stopped: the poller failed: 'id'"]
    assert isinstance(failure[0], PlatformError)


def test_a_batch_runs_at_once_when_the_check_of_the_day_fails() -> None:
    def finished(day: date) -> bool:
        raise PlatformError("warehouse locked")

    calls = _schedule(
        lambda day, calls: calls.append("batch"),
        batch_at=clock_time(0, 0),  # past already: the day's check decides
        batch_finished=finished,
    )
    assert calls == ["batch", "transform"]


_STEPS = ("up.started", "batch.done", "stream.poll", "transform.done")


def _wait_for_steps(log_file: Path, proc: subprocess.Popen[str], timeout: float) -> str:
    """The log once every step is in it and two transforms are done, or at the deadline
    (or the process's end): a slow machine waits longer, a fast one stops early."""
    deadline = time.monotonic() + timeout
    while True:
        log = log_file.read_text()
        done = all(step in log for step in _STEPS) and log.count("transform.done") >= 2
        if done or proc.poll() is not None or time.monotonic() > deadline:
            return log
        time.sleep(0.5)


@pytest.mark.slow
def test_up_runs_every_part_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log_file = tmp_path / "up.log"
    with serve_in_thread(create_app(Catalog(), live_rate=5)) as url:
        env = {
            **os.environ,
            "EYP_STREAM__POLL_INTERVAL": "1",
            "EYP_STREAM__TRANSFORM_EVERY": "0.1",
            # past already: the day's batch has not run in this fresh data dir, so up
            # catches it up at once (without --now)
            "EYP_BATCH__RUN_AT": "00:00:00",
        }
        with log_file.open("w") as stderr:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ey_platform",
                    "up",
                    "--api-url",
                    url,
                    "--data-dir",
                    str(data),
                ],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                text=True,
                env=env,
            )
            try:
                _wait_for_steps(log_file, proc, timeout=180)
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
            finally:
                proc.kill()
    log = log_file.read_text()
    assert proc.returncode == 0, log
    for step in (*_STEPS, "stream.consume", "up.stopped"):  # the consumer's tally at its end
        assert step in log, step
    assert log.count("transform.done") >= 2
    assert "Traceback" not in log
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        (facts,) = con.execute("SELECT count(*) FROM bq_analytics.fact_orders").fetchone()
        (events,) = con.execute("SELECT count(*) FROM bq_raw.carts_events").fetchone()
    assert facts > 0 and events >= 7
