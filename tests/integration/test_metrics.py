"""`ey-platform up` with EYP_METRICS__PORT: /metrics shows the batch's rows and the
stream's backlog, /healthz the platform's health. The real command as a subprocess, the
bundled server and the endpoint on loopback, scraped with httpx."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ey_platform.bus.base import Message
from ey_platform.bus.sqlite import SQLiteBus
from ey_platform.source.data import Catalog
from ey_platform.source.server import create_app, free_port, serve_in_thread

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(base: str) -> Samples:
    """Every sample of /metrics by name and labels; nothing while it is not up yet."""
    try:
        answer = httpx.get(f"{base}/metrics", timeout=5)
    except httpx.TransportError:
        return {}
    answer.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _wait_for_batch_and_bus(base: str, proc: subprocess.Popen[bytes], timeout: float) -> Samples:
    """The first scrape that shows the batch's users and the bus's dead letter (or the
    last one, at the deadline or the process's end)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = _scrape(base)
        users = _value(samples, "eyp_rows_loaded_total", job="batch", entity="users")
        ready = users is not None and _value(samples, "eyp_bus_dead_letters") == 1
        if ready or proc.poll() is not None or time.monotonic() > deadline:
            return samples
        time.sleep(0.5)


@pytest.mark.slow
def test_up_serves_the_batchs_rows_and_the_streams_backlog(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_file, data = tmp_path / "up.log", tmp_path / "data"
    # A message that is no event: the consumer of up dead-letters it, and the scrapes,
    # reading the bus on their own, see it.
    data.mkdir()
    bus = SQLiteBus(data / "bus.sqlite3")
    bus.setup()
    bus.publish([Message(b"not an event")])
    bus.close()
    with serve_in_thread(create_app(Catalog(n_users=10), live_rate=5)) as url:
        env = {
            **os.environ,
            "EYP_METRICS__PORT": str(port),
            "EYP_STREAM__POLL_INTERVAL": "1",
            "EYP_STREAM__TRANSFORM_EVERY": "60",
            "EYP_BATCH__RUN_AT": "00:00:00",  # past: the day's batch runs at once
        }
        command = [sys.executable, "-m", "ey_platform", "up", "--api-url", url]
        with log_file.open("w") as stderr:
            proc = subprocess.Popen(
                [*command, "--data-dir", str(data)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
            )
            try:
                samples = _wait_for_batch_and_bus(base, proc, timeout=120)
                health = httpx.get(f"{base}/healthz", timeout=5)
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
            finally:
                proc.kill()
    log = log_file.read_text()
    assert proc.returncode == 0, log
    assert f"metrics.serving host=127.0.0.1 port={port}" in log
    assert _value(samples, "eyp_rows_loaded_total", job="batch", entity="users") == 10, log
    assert _value(samples, "eyp_rows_loaded_total", job="batch", entity="products") == 20
    backlog = _value(samples, "eyp_bus_backlog_messages")
    assert backlog is not None and backlog >= 0
    assert _value(samples, "eyp_bus_dead_letters") == 1
    assert (_value(samples, "eyp_bus_oldest_unacked_seconds") or 0) >= 0
    assert _value(samples, "eyp_job_last_success_timestamp_seconds", job="batch")
    assert health.status_code == 200
    assert orjson.loads(health.content)["status"] == "ok"
    with pytest.raises(httpx.TransportError):  # the endpoint ends with the process
        httpx.get(f"{base}/healthz", timeout=2)
