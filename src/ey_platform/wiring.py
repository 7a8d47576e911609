"""The composition root: every pipeline is built from settings here, and only here.

:mod:`ey_platform.backends` picks the backend of each stage from the profile; this
module puts the stages together into the batch, the stream's parts, the status view,
the scheduler of ``up`` and the demo job. The CLI, the benchmarks and the tests'
fixtures call these builders; the pipelines themselves know no settings and no backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from ey_platform.backends import make_bus, make_lake, make_warehouse, open_bus_read_only
from ey_platform.bus.base import Bus, setup_bus
from ey_platform.locks import job_lock
from ey_platform.models import BATCH_ENTITIES, Entity
from ey_platform.pipelines.batch import BatchPipeline, BatchResult, Progress, raise_if_held
from ey_platform.pipelines.consumer import CartConsumer
from ey_platform.pipelines.demo import Summary, summarize
from ey_platform.pipelines.platform import Scheduler
from ey_platform.pipelines.poller import CartPoller
from ey_platform.pipelines.status import stream_status
from ey_platform.settings import Settings
from ey_platform.source.client import FakeStoreClient
from ey_platform.state.base import PollerState
from ey_platform.state.sqlite import SQLitePollerState
from ey_platform.warehouse.base import Warehouse


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
    )


def run_batch(
    settings: Settings,
    day: date,
    entities: Sequence[Entity] = BATCH_ENTITIES,
    *,
    from_lake: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> list[BatchResult]:
    """Run the batch for ``day`` under the batch's job lock; the per-entity results."""
    with job_lock(settings.data_dir / "locks" / "batch.lock", "batch"), ExitStack() as opened:
        client = None
        if not from_lake:
            client = opened.enter_context(FakeStoreClient.from_settings(settings))
        pipeline = batch_pipeline(settings, client, progress=progress)
        return pipeline.run(entities, day, from_lake=from_lake, force=force)


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
        consumer = CartConsumer(bus, warehouse.event_sink(), settings.stream.batch_size)
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


def scheduler(settings: Settings, parts: StreamParts) -> Scheduler:
    """``up``: the stream's parts, the daily batch and the transform on their clocks."""
    from ey_platform.pipelines.batch import day_finished
    from ey_platform.transform import BUILD, run_dbt

    def batch(day: date) -> object:
        # A held day is retried like a failed one: the API may answer whole again.
        return raise_if_held(run_batch(settings, day))

    return Scheduler(
        parts.poller,
        parts.consumer,
        batch=batch,
        transform=lambda: run_dbt(settings, *BUILD, quiet=True),
        poll_interval=settings.stream.poll_interval,
        batch_at=settings.batch.run_at,
        transform_every=timedelta(minutes=settings.stream.transform_every),
        batch_finished=lambda day: day_finished(parts.warehouse, day, BATCH_ENTITIES),
        retry_after=timedelta(minutes=settings.batch.retry_after),
    )


def run_demo(
    settings: Settings,
    *,
    progress: Progress | None = None,
    batch_done: Callable[[list[BatchResult]], object] = lambda results: None,
) -> Summary:
    """The main job end to end on the profile's backends: the day's batch, one poll, a
    drained consume and dbt build; then counts at every layer. ``batch_done`` sees the
    batch's results as soon as it ends (the CLI prints them, and stops on a held day)."""
    from ey_platform.transform import BUILD, run_dbt

    batch_done(run_batch(settings, datetime.now(UTC).date(), progress=progress))
    with stream_parts(settings) as parts:
        parts.poller.poll_once()
        parts.consumer.run(drain=True)
    run_dbt(settings, *BUILD, quiet=True)
    with FakeStoreClient.from_settings(settings) as client:
        return summarize(make_warehouse(settings), client)
