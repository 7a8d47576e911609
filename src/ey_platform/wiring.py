"""The composition root: every pipeline is built from settings here, and only here.

:mod:`ey_platform.backends` picks the backend of each stage from the profile; this
module puts the stages together into the batch, the stream's parts, the status view,
the scheduler of ``up`` and the demo job. The CLI, the benchmarks and the tests'
fixtures call these builders; the pipelines themselves know no settings and no backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

from ey_platform.backends import make_bus, make_lake, make_warehouse, open_bus_read_only
from ey_platform.bus.base import Bus, BusStats, bus_stats, setup_bus
from ey_platform.errors import PlatformError
from ey_platform.locks import holder, job_lock
from ey_platform.models import BATCH_ENTITIES, Entity
from ey_platform.ops import metrics
from ey_platform.ops.alerts import Alerts, Webhook
from ey_platform.ops.context import new_run_id
from ey_platform.ops.health import Finding, Health
from ey_platform.ops.quality import log_results
from ey_platform.ops.watch import Watch, watch_bus
from ey_platform.pipelines.batch import (
    BatchPipeline,
    BatchResult,
    Progress,
    abandon_dead_runs,
    raise_if_held,
)
from ey_platform.pipelines.consumer import CartConsumer
from ey_platform.pipelines.demo import Summary, summarize
from ey_platform.pipelines.platform import Scheduler
from ey_platform.pipelines.poller import CartPoller
from ey_platform.pipelines.status import stream_status
from ey_platform.settings import Settings
from ey_platform.source.client import FakeStoreClient
from ey_platform.state.base import PollerState, PollResult
from ey_platform.state.sqlite import SQLitePollerState
from ey_platform.warehouse.base import QualityResult, RunRecord, Warehouse

if TYPE_CHECKING:
    from ey_platform.transform import DbtOutcome

log = logging.getLogger("ey_platform.wiring")


def batch_pipeline(
    settings: Settings, client: FakeStoreClient | None, *, progress: Progress | None = None
) -> BatchPipeline:
    """The batch on the profile's lake and warehouse; ``client`` None reloads from the
    lake only."""
    return BatchPipeline(
        make_lake(settings),
        make_warehouse(settings),
        client,
        progress=progress,
        part_bytes=settings.batch.part_mb << 20,
        workers=settings.batch.workers,
        min_rows_fraction=settings.batch.min_rows_fraction,
        schema_policy=settings.batch.schema_policy,
    )


def make_alerts(settings: Settings, warehouse: Warehouse | None = None) -> Alerts:
    """Incidents in the profile's warehouse, told to the webhook if one is set."""
    url = settings.alerts.webhook_url
    notifier = Webhook(url, settings.alerts.timeout) if url is not None else None
    return Alerts(warehouse or make_warehouse(settings), notifier, environment=settings.environment)


def run_batch(
    settings: Settings,
    day: date,
    entities: Sequence[Entity] = BATCH_ENTITIES,
    *,
    from_lake: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> list[BatchResult]:
    """Run the batch for ``day`` under the batch's job lock, watched (:mod:`.ops.watch`):
    a failure, a held day or a failed quality check is alerted; the per-entity
    results."""
    with job_lock(settings.data_dir / "locks" / "batch.lock", "batch"), ExitStack() as opened:
        client = None
        if not from_lake:
            client = opened.enter_context(FakeStoreClient.from_settings(settings))
        pipeline = batch_pipeline(settings, client, progress=progress)
        watch = Watch(make_alerts(settings, pipeline.warehouse), "batch")
        run_id = new_run_id(datetime.now(UTC))
        with watch.run(run_id) as outcome:
            results = pipeline.run(entities, day, from_lake=from_lake, force=force, run_id=run_id)
            outcome.status = "held" if any(r.status == "held" for r in results) else "ok"
            outcome.rows = {r.entity: r.loaded for r in results}
        held = [r.entity for r in results if r.status == "held"]
        for result in results:
            watch.held(result.entity, result.reason if result.status == "held" else None, run_id)
        # A held day is alerted as such; a forced one was looked at by whoever forced it.
        covered = [r.entity for r in results] if force else held
        watch.quality((q for r in results for q in r.quality), covered=covered)
        return results


def run_backfill(
    settings: Settings,
    start: date,
    end: date,
    entities: Sequence[Entity] = BATCH_ENTITIES,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> list[BatchResult]:
    """:func:`run_batch` from the lake for each day from ``start`` to ``end`` that it
    holds, in order (:func:`.pipelines.batch.backfill`)."""
    from ey_platform.pipelines.batch import backfill

    reload = partial(run_batch, settings, from_lake=True, force=force)
    return backfill(make_lake(settings), (start, end), entities, reload, progress)


def run_transform(
    settings: Settings, *, quiet: bool = False, full_refresh: bool = False
) -> DbtOutcome:
    """The transform, watched: ``dbt source freshness``, then ``dbt build`` into the build
    dataset, then the marts published, only if every test passed. Each result (freshness,
    every test) is recorded in ``_quality_results``, the run in ``_pipeline_runs``; a
    failed build, a stale source or a warning test is alerted. ``full_refresh`` rebuilds
    incremental models from the raw layer."""
    warehouse = make_warehouse(settings)
    watch = Watch(make_alerts(settings, warehouse), "transform")
    now = datetime.now(UTC)
    run = RunRecord(new_run_id(now), "transform", "dbt", now.date(), now, "dbt", holder=holder())
    # One build at a time: a publication copies whatever the build dataset holds.
    lock = job_lock(settings.data_dir / "locks" / "transform.lock", "transform")
    with lock, watch.run(run.run_id):
        if settings.profile == "local":  # on Google Cloud, Terraform makes the raw layer
            warehouse.setup()
        abandon_dead_runs(warehouse, "transform", now)
        warehouse.record_run(run)
        try:
            outcome = _transform(
                settings, warehouse, watch, run.run_id, quiet=quiet, full_refresh=full_refresh
            )
        except Exception as exc:
            run.status, run.error = "failed", " ".join(str(exc).split())
            _record_run(warehouse, run)  # the error above is the one to see
            raise
        run.status = "ok"
        _record_run(warehouse, run)
    return outcome


def _transform(
    settings: Settings,
    warehouse: Warehouse,
    watch: Watch,
    run_id: str,
    *,
    quiet: bool,
    full_refresh: bool,
) -> DbtOutcome:
    from ey_platform.transform import TransformError, build_and_publish, source_freshness

    fresh = source_freshness(settings, run_id=run_id)
    _record_quality(warehouse, fresh)
    watch.quality(fresh)
    try:
        outcome = build_and_publish(settings, warehouse, quiet=quiet, full_refresh=full_refresh)
    except TransformError as exc:
        if exc.outcome is not None:  # the failed build is the alert
            _record_quality(warehouse, exc.outcome.quality(run_id))
        raise
    tests = outcome.quality(run_id)
    _record_quality(warehouse, tests)
    watch.quality(tests)
    return outcome


def _record_run(warehouse: Warehouse, run: RunRecord) -> None:
    run.finished_at = datetime.now(UTC)
    try:
        warehouse.record_run(run)
    except PlatformError as exc:
        log.warning("transform.unrecorded", extra={"run_id": run.run_id, "error": str(exc)})


def _record_quality(warehouse: Warehouse, results: list[QualityResult]) -> None:
    """Record and log ``results``; a warehouse that refuses them is logged, not raised:
    the transform's own outcome matters more."""
    log_results(results)
    try:
        warehouse.record_quality(results)
    except PlatformError as exc:
        log.warning("quality.unrecorded", extra={"error": str(exc)})


class StreamParts(NamedTuple):
    """The poller and the consumer, with what they work on."""

    poller: CartPoller
    consumer: CartConsumer
    bus: Bus
    state: PollerState
    warehouse: Warehouse


class ConsumerParts(NamedTuple):
    """The consumer alone: no API client and no poller state."""

    consumer: CartConsumer
    bus: Bus
    warehouse: Warehouse


@contextmanager
def consumer_parts(settings: Settings) -> Iterator[ConsumerParts]:
    """The consumer on the profile's bus and warehouse, set up; closed afterwards."""
    with ExitStack() as opened:  # each part closed even if a later one fails to open
        bus = make_bus(settings)
        opened.callback(bus.close)
        setup_bus(bus)
        warehouse = make_warehouse(settings)
        warehouse.setup()
        watch = Watch(make_alerts(settings, warehouse), "consume")

        def landed(events: int) -> None:
            metrics.record_rows("consume", "carts_events", events)
            watch.working()  # a consumer that lands is well, long before its run ends

        consumer = CartConsumer(
            bus,
            warehouse.event_sink(),
            settings.stream.batch_size,
            around_run=watch.run,
            landed=landed,
        )
        yield ConsumerParts(consumer, bus, warehouse)


@contextmanager
def stream_parts(settings: Settings) -> Iterator[StreamParts]:
    """The poller and the consumer from settings, set up; closed afterwards."""
    with ExitStack() as opened, consumer_parts(settings) as consuming:
        lake = make_lake(settings)
        lake.setup()
        state = SQLitePollerState(settings.poller_state_path)
        opened.callback(state.close)
        client = opened.enter_context(FakeStoreClient.from_settings(settings))
        poller = CartPoller(
            client,
            consuming.bus,
            state,
            lake,
            landed=consuming.warehouse,
            reconcile_every=settings.stream.reconcile_every * 60,
            max_delete_fraction=settings.stream.max_delete_fraction,
            around_poll=Watch(make_alerts(settings, consuming.warehouse), "poll").run,
        )
        yield StreamParts(poller, consuming.consumer, consuming.bus, state, consuming.warehouse)


def read_stream_status(settings: Settings) -> dict[str, str]:
    """``stream status`` from the bus, the poller state and the warehouse, opened for
    reading only: nothing is created, nothing written."""
    with ExitStack() as opened:
        bus = open_bus_read_only(settings)
        if bus is not None:
            opened.callback(bus.close)
        state = SQLitePollerState.open_read_only(settings.poller_state_path)
        if state is not None:
            opened.callback(state.close)
        return stream_status(bus, state, make_warehouse(settings, read_only=True))


FRESHNESS_SOURCES = ("products", "users", "carts_events")


def read_health(settings: Settings) -> Health:
    """``ey-platform health``: the findings of :mod:`.ops.health`, from the warehouse, the
    bus and the poller state, opened for reading only. A part that cannot be read is a
    failed finding of its own; the others are still shown."""
    from ey_platform.ops import health
    from ey_platform.ops.freshness import freshness_limits

    now = datetime.now(UTC)
    warehouse = make_warehouse(settings, read_only=True)
    backlog_age = settings.alerts.backlog_age * 60
    reads: dict[str, Callable[[], list[Finding]]] = {
        "job": lambda: health.job_findings(warehouse.last_runs(), _last_poll(settings)),
        "freshness": lambda: health.freshness_findings(
            warehouse.loaded_at(FRESHNESS_SOURCES), freshness_limits(), now
        ),
        "stream": lambda: health.stream_findings(_bus_stats(settings), backlog_age),
        "quality": lambda: health.quality_findings(warehouse.latest_quality()),
        "incident": lambda: health.incident_findings(warehouse.open_incidents()),
    }
    try:
        warehouse.query("SELECT 1")
    except PlatformError as exc:  # none yet, or unreachable: one finding says it
        reads = {"warehouse": partial(_unreadable, warehouse.raw, exc), "stream": reads["stream"]}
    found: list[Finding] = []
    for area, read in reads.items():
        try:
            found += read()
        except PlatformError as exc:
            found.append(Finding(area, "unreadable", "fail", str(exc)))
    return Health(found)


def _unreadable(raw: str, exc: PlatformError) -> list[Finding]:
    return [Finding("warehouse", raw, "fail", str(exc))]


def _bus_stats(settings: Settings) -> BusStats | None:
    bus = open_bus_read_only(settings)
    if bus is None:
        return BusStats(0, 0, None, 0)  # nothing published yet
    try:
        return bus_stats(bus)
    finally:
        bus.close()


def _last_poll(settings: Settings) -> PollResult | None:
    state = SQLitePollerState.open_read_only(settings.poller_state_path)
    if state is None:
        return None
    try:
        return state.last_poll()
    finally:
        state.close()


def scheduler(settings: Settings, parts: StreamParts) -> Scheduler:
    """``up``: the stream's parts, the daily batch and the transform on their clocks."""
    from ey_platform.pipelines.batch import day_finished

    def batch(day: date) -> object:
        # A held day is retried like a failed one: the API may answer whole again.
        return raise_if_held(run_batch(settings, day))

    return Scheduler(
        parts.poller,
        parts.consumer,
        batch=batch,
        transform=lambda: run_transform(settings, quiet=True),
        poll_interval=settings.stream.poll_interval,
        batch_at=settings.batch.run_at,
        transform_every=timedelta(minutes=settings.stream.transform_every),
        batch_finished=lambda day: day_finished(parts.warehouse, day, BATCH_ENTITIES),
        retry_after=timedelta(minutes=settings.batch.retry_after),
        check=partial(check_bus, settings, make_alerts(settings, parts.warehouse)),
    )


def check_bus(settings: Settings, alerts: Alerts) -> None:
    """Alert on the bus's backlog and dead letters, read from a connection of its own.
    Pub/Sub cannot count: Cloud Monitoring alerts on its backlog and dead letters."""
    if settings.profile == "gcp":
        return
    bus = open_bus_read_only(settings)
    if bus is None:
        return
    try:
        stats = bus_stats(bus)
    finally:
        bus.close()
    watch_bus(alerts, stats, settings.alerts.backlog_age * 60)


def run_demo(
    settings: Settings,
    *,
    progress: Progress | None = None,
    batch_done: Callable[[list[BatchResult]], object] = lambda results: None,
) -> Summary:
    """The main job end to end on the profile's backends: the day's batch, one poll, a
    drained consume and dbt build; then counts at every layer. ``batch_done`` sees the
    batch's results as soon as it ends (the CLI prints them, and stops on a held day)."""
    batch_done(run_batch(settings, datetime.now(UTC).date(), progress=progress))
    with stream_parts(settings) as parts:
        parts.poller.poll_once()
        parts.consumer.run(drain=True)
    run_transform(settings, quiet=True)
    with FakeStoreClient.from_settings(settings) as client:
        return summarize(make_warehouse(settings), client)
