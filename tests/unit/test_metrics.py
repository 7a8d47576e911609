"""The metrics of the jobs and the endpoint of ``up``: values in the platform's registry,
the bus's figures read at each scrape from a real embedded bus, and /healthz and
/metrics served on loopback."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ey_platform.bus.base import BusStats, Message
from ey_platform.bus.sqlite import SQLiteBus
from ey_platform.errors import BusError, ConfigError
from ey_platform.ops import metrics
from ey_platform.ops.metrics import REGISTRY, BusCollector, BusReader, record_rows, record_run


@pytest.fixture
def job() -> str:
    """A job name of the test's own: the registry lives as long as the process."""
    return f"test-{uuid.uuid4().hex[:8]}"


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_run_counts_its_outcome_duration_rows_and_success_time(job: str) -> None:
    before = time.time()
    record_run(job, "loaded", 1.5, {"users": 10, "products": 20})
    record_run(job, "loaded", 0.5, {"users": 4})
    record_rows(job, "users", 1)
    assert _value("eyp_job_runs_total", job=job, status="loaded") == 2
    assert _value("eyp_job_duration_seconds_count", job=job) == 2
    assert _value("eyp_job_duration_seconds_sum", job=job) == 2.0
    assert _value("eyp_job_duration_seconds_bucket", job=job, le="1.0") == 1
    assert _value("eyp_rows_loaded_total", job=job, entity="users") == 15
    assert _value("eyp_rows_loaded_total", job=job, entity="products") == 20
    succeeded = _value("eyp_job_last_success_timestamp_seconds", job=job)
    assert succeeded is not None and before <= succeeded <= time.time()


@pytest.mark.parametrize("status", ["failed", "held"])
def test_a_failed_or_held_run_leaves_the_last_success_where_it_was(job: str, status: str) -> None:
    record_run(job, status, 2.0)
    assert _value("eyp_job_runs_total", job=job, status=status) == 1
    assert _value("eyp_job_last_success_timestamp_seconds", job=job) is None
    record_run(job, "ok", 1.0)
    succeeded = _value("eyp_job_last_success_timestamp_seconds", job=job)
    record_run(job, status, 2.0)
    assert _value("eyp_job_last_success_timestamp_seconds", job=job) == succeeded


def _bus_figures(collector: BusCollector) -> dict[str, float]:
    return {family.name: family.samples[0].value for family in collector.collect()}


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[SQLiteBus]:
    """A real embedded bus, set up, with three messages published."""
    made = SQLiteBus(tmp_path / "bus.sqlite3")
    made.setup()
    made.publish([Message(str(i).encode()) for i in range(3)])
    yield made
    made.close()


def test_the_bus_figures_are_read_at_each_scrape(bus: SQLiteBus) -> None:
    collector = BusCollector(BusReader(lambda: SQLiteBus.open_read_only(bus.path)))
    figures = _bus_figures(collector)
    assert figures["eyp_bus_backlog_messages"] == 3
    assert figures["eyp_bus_dead_letters"] == 0
    assert figures["eyp_bus_oldest_unacked_seconds"] >= 0
    (first, *_) = bus.pull(1)
    bus.dead_letter(first, "test")
    figures = _bus_figures(collector)  # the next scrape sees what changed
    assert figures["eyp_bus_backlog_messages"] == 2
    assert figures["eyp_bus_dead_letters"] == 1


def test_no_bus_figures_before_the_bus_exists(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    collector = BusCollector(BusReader(lambda: SQLiteBus.open_read_only(path)))
    assert _bus_figures(collector) == {}
    created = SQLiteBus(path)  # the consumer creates it: the next scrape reads it
    created.setup()
    created.close()
    assert _bus_figures(collector)["eyp_bus_backlog_messages"] == 0


class _Uncounted:
    """A bus that cannot count what its subscription holds, as Pub/Sub's (which needs
    the emulator; this one only lacks ``stats``)."""

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen
        seen.append("opened")

    def close(self) -> None:
        self.seen.append("closed")


def test_a_bus_that_cannot_count_shows_no_figures_and_is_not_opened_again() -> None:
    seen: list[str] = []
    collector = BusCollector(BusReader(lambda: _Uncounted(seen)))  # type: ignore[arg-type, return-value]
    assert _bus_figures(collector) == {} and _bus_figures(collector) == {}
    assert seen == ["opened", "closed"]


def test_a_bus_that_cannot_be_read_is_logged_and_the_scrape_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> BusStats | None:
        raise BusError("the bus file is damaged")

    with caplog.at_level(logging.WARNING, "ey_platform.metrics"):
        assert _bus_figures(BusCollector(broken)) == {}
    (record,) = caplog.records
    assert record.getMessage() == "metrics.bus_failed"
    assert record.__dict__["error"] == "the bus file is damaged"


def _health(status: str) -> dict[str, object]:
    return {"status": status, "failed": [] if status == "ok" else ["the consumer failed: x"]}


@pytest.mark.parametrize(("status", "code"), [("ok", 200), ("failing", 503)])
def test_healthz_answers_the_health_as_json_200_when_ok_else_503(
    bus: SQLiteBus, status: str, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    read = BusReader(lambda: SQLiteBus.open_read_only(bus.path))
    with (
        caplog.at_level(logging.INFO, "ey_platform.metrics"),
        metrics.serving("127.0.0.1", 0, health=lambda: _health(status), bus_stats=read) as port,
    ):
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        # uvicorn writes through the platform's handlers, JSON ones included
        assert logging.getLogger("uvicorn.error").handlers == []
    assert answer.status_code == code
    assert answer.headers["content-type"] == "application/json"
    assert orjson.loads(answer.content) == _health(status)
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    assert families["eyp_bus_backlog_messages"].samples[0].value == 3
    assert {"eyp_job_runs", "eyp_rows_loaded", "eyp_job_duration_seconds"} <= set(families)
    (serving,) = [r for r in caplog.records if r.getMessage() == "metrics.serving"]
    assert (serving.__dict__["host"], serving.__dict__["port"]) == ("127.0.0.1", port)


def test_metrics_speak_openmetrics_to_a_scraper_that_asks(job: str) -> None:
    record_run(job, "ok", 0.2, {"carts_events": 7})
    with metrics.serving(
        "127.0.0.1", 0, health=lambda: _health("ok"), bus_stats=lambda: None
    ) as port:
        scraped = httpx.get(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
            timeout=10,
        )
    assert scraped.headers["content-type"].startswith("application/openmetrics-text")
    assert f'eyp_rows_loaded_total{{entity="carts_events",job="{job}"}} 7.0' in scraped.text
    assert "eyp_bus_" not in scraped.text and scraped.text.endswith("# EOF\n")


def test_a_port_in_use_is_one_error_naming_the_settings() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with (
            pytest.raises(
                ConfigError,
                match=rf"EYP_METRICS__PORT: cannot listen on 127\.0\.0\.1:{port}: Address already",
            ),
            metrics.serving(
                "127.0.0.1", port, health=lambda: _health("ok"), bus_stats=lambda: None
            ),
        ):
            pass
    # and the registry holds no collector of the failed start
    with metrics.serving("127.0.0.1", 0, health=lambda: _health("ok"), bus_stats=lambda: None):
        pass
