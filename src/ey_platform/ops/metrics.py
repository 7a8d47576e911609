"""Prometheus metrics of the jobs, and the HTTP endpoint of ``up``: ``/metrics`` and
``/healthz`` on a loopback port (``EYP_METRICS__PORT``).

The jobs count what they did with :func:`record_run` and :func:`record_rows`, in a
registry of this module's own (not prometheus-client's global one, which other libraries
may fill). The bus's figures are read at each scrape, from a connection of the scrape's
own: a Collector cannot share the consumer's bus, whose connection belongs to its thread.
On Pub/Sub they are absent: Cloud Monitoring has them.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

import orjson
import uvicorn
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ey_platform.bus.base import Bus, BusStats, SupportsStats
from ey_platform.errors import ConfigError, PlatformError

log = logging.getLogger("ey_platform.metrics")

REGISTRY = CollectorRegistry()
"""Every metric of the platform; what ``/metrics`` shows."""

# The outcomes of a run that are not a success: the last success time stays where it was.
NOT_SUCCESS = frozenset({"failed", "held"})

_RUNS = Counter(
    "eyp_job_runs",
    "Runs of each job that ended, by outcome (loaded, unchanged, ok, held, failed, ...).",
    ["job", "status"],
    registry=REGISTRY,
)
_DURATION = Histogram(
    "eyp_job_duration_seconds",
    "Seconds a run of each job took.",
    ["job"],
    # A poll or a consume batch takes well under a second, a batch or a transform minutes.
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
_ROWS = Counter(
    "eyp_rows_loaded",
    "Rows each job loaded into the warehouse, by entity.",
    ["job", "entity"],
    registry=REGISTRY,
)
_LAST_SUCCESS = Gauge(
    "eyp_job_last_success_timestamp_seconds",
    "Unix time at which a run of each job last ended well.",
    ["job"],
    registry=REGISTRY,
)


def record_run(
    job: str, status: str, seconds: float, rows: Mapping[str, int] | None = None
) -> None:
    """A run of ``job`` ended with ``status`` after ``seconds``, having loaded ``rows``
    by entity. Any status but failed and held is a success."""
    _RUNS.labels(job, status).inc()
    _DURATION.labels(job).observe(seconds)
    for entity, count in (rows or {}).items():
        record_rows(job, entity, count)
    if status not in NOT_SUCCESS:
        _LAST_SUCCESS.labels(job).set(time.time())


def record_rows(job: str, entity: str, rows: int) -> None:
    """``job`` loaded ``rows`` more rows of ``entity``."""
    _ROWS.labels(job, entity).inc(rows)


class BusCollector(Collector):
    """The subscription's backlog, oldest unacked message and dead letters, read from
    ``stats`` at each scrape; none of them when it returns None (no bus yet, or a bus
    that cannot count) or fails (logged: the scrape still shows the jobs)."""

    def __init__(self, stats: Callable[[], BusStats | None]) -> None:
        self.stats = stats

    def collect(self) -> Iterable[Metric]:
        try:
            stats = self.stats()
        except Exception as exc:
            log.warning("metrics.bus_failed", extra={"error": str(exc)})
            return
        if stats is None:
            return
        figures = (
            (
                "eyp_bus_backlog_messages",
                "Messages of the subscription not yet acked.",
                stats.backlog,
            ),
            (
                "eyp_bus_oldest_unacked_seconds",
                "Age of the oldest unacked message; 0 when there is none.",
                stats.oldest_unacked_seconds or 0.0,
            ),
            ("eyp_bus_dead_letters", "Messages on the dead-letter topic.", stats.dead_letters),
        )
        for name, documentation, value in figures:
            if value is not None:
                yield GaugeMetricFamily(name, documentation, value=value)


class BusReader:
    """:class:`BusCollector`'s ``stats``: opens the bus with ``open_bus`` (read only) for
    each scrape and closes it; once the bus proves unable to count (Pub/Sub), it is not
    opened again."""

    def __init__(self, open_bus: Callable[[], Bus | None]) -> None:
        self.open_bus = open_bus
        self.counts = True

    def __call__(self) -> BusStats | None:
        if not self.counts:
            return None
        bus = self.open_bus()
        if bus is None:  # not created yet: maybe at the next scrape
            return None
        try:
            if not isinstance(bus, SupportsStats):
                self.counts = False
                return None
            return bus.stats()
        finally:
            bus.close()


def create_app(
    registry: CollectorRegistry, health: Callable[[], Mapping[str, object]]
) -> Starlette:
    """``/metrics`` in the format the scraper asks for; ``/healthz``: ``health()`` as
    JSON, 200 when its status is ok, 503 otherwise."""

    def metrics(request: Request) -> Response:  # a thread of the pool: reads may block
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(registry), headers={"Content-Type": content_type})

    def healthz(request: Request) -> Response:
        body = dict(health())
        code = 200 if body.get("status") == "ok" else 503
        return Response(orjson.dumps(body, default=str), code, media_type="application/json")

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)])


@contextmanager
def serving(
    host: str,
    port: int,
    *,
    health: Callable[[], Mapping[str, object]],
    bus_stats: Callable[[], BusStats | None],
) -> Iterator[int]:
    """Serve ``/metrics`` (this module's registry and the bus's figures) and ``/healthz``
    on ``host``:``port`` (0: a free port) in a thread while in the block; yields the
    port bound."""
    collector = BusCollector(bus_stats)
    REGISTRY.register(collector)
    try:
        with _bound(host, port) as sock, _in_thread(create_app(REGISTRY, health), sock):
            bound = int(sock.getsockname()[1])
            log.info("metrics.serving", extra={"host": host, "port": bound})
            yield bound
    finally:
        REGISTRY.unregister(collector)


@contextmanager
def _bound(host: str, port: int) -> Iterator[socket.socket]:
    """A listening socket: bound here, so that a port in use is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError(
            f"EYP_METRICS__HOST, EYP_METRICS__PORT: cannot listen on {host}:{port}: "
            f"{exc.strerror or exc}"
        ) from None
    with sock:
        yield sock


@contextmanager
def _in_thread(app: Starlette, sock: socket.socket) -> Iterator[None]:
    # log_config None: uvicorn's records go through the platform's handlers (JSON on
    # Google Cloud) instead of handlers of its own.
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="metrics", daemon=True
    )
    thread.start()
    while not server.started:
        if not thread.is_alive():  # uvicorn has logged why
            raise PlatformError("the metrics endpoint could not start")
        threading.Event().wait(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
