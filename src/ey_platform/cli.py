"""The ``ey-platform`` command line: one command per stage, no business logic here."""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, cast

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table
from rich.text import Text

from ey_platform import __version__
from ey_platform.backends import make_lake, make_warehouse
from ey_platform.errors import BatchHeld, ConfigError, PlatformError
from ey_platform.logs import logging_through, setup_logging
from ey_platform.models import BATCH_ENTITIES, ENTITIES, Entity
from ey_platform.runtime import tune_allocator
from ey_platform.settings import Settings, load_settings

if TYPE_CHECKING:
    from ey_platform.pipelines.batch import Progress as BatchProgress
    from ey_platform.pipelines.stream import StreamParts

# Click's plain help: Typer's rich help reads help text as rich markup (it swallows
# "[env: ...]") and gives every flag a type ("--once <bool>"). As wide as the terminal,
# up to 120 columns.
_HELP: dict[str, Any] = {
    "rich_markup_mode": None,
    "no_args_is_help": True,
    "context_settings": {"max_content_width": 120},
}
app = typer.Typer(
    name="ey-platform",
    help="EY Data Platform: FakeStore API -> raw lake -> warehouse -> dbt star schema.",
    pretty_exceptions_enable=False,
    add_completion=False,
    **_HELP,
)
fakestore_app = typer.Typer(help="The bundled FakeStore-compatible server.", **_HELP)
app.add_typer(fakestore_app, name="fakestore")
stream_app = typer.Typer(help="Streaming of cart events: poll, consume, run, status.", **_HELP)
app.add_typer(stream_app, name="stream")

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)
_state: dict[str, Any] = {"debug": False, "data_dir": None}


def _env(variable: str) -> str:
    """The help hint naming the variable behind an option. A no-break space: the help
    formatter wraps at spaces and would split the hint over two lines."""
    return f"[env:\u00a0{variable}]"


class Profile(StrEnum):
    local = "local"
    gcp = "gcp"


class BatchEntity(StrEnum):
    products = "products"
    users = "users"
    all = "all"


ApiUrl = Annotated[
    Optional[str],  # noqa: UP045 - Typer reads the annotation at run time
    typer.Option("--api-url", help=f"FakeStore base URL {_env('EYP_API_URL')}."),
]
DataDir = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--data-dir", help=f"Local data folder {_env('EYP_DATA_DIR')}."),
]


def _version(value: bool) -> None:
    if value:
        console.print(f"ey-platform {__version__}")
        raise typer.Exit


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    profile: Annotated[
        Optional[Profile],  # noqa: UP045
        typer.Option(
            "--profile", help=f"local or gcp: every backend at once {_env('EYP_PROFILE')}."
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """EY Data Platform command line. Settings come from EYP_* variables and .env."""
    _state["debug"] = debug
    if profile is not None:
        # The environment, so that every settings read and dbt's subprocess agree.
        os.environ["EYP_PROFILE"] = profile.value
    setup_logging(logging.DEBUG if debug else logging.INFO)


def _settings(**overrides: Any) -> Settings:
    """The settings; their data folder names the place of a disk error without a path."""
    cfg = load_settings(**overrides)
    _state["data_dir"] = cfg.data_dir
    return cfg


@app.command("config")
def config_cmd(api_url: ApiUrl = None, data_dir: DataDir = None) -> None:
    """Print the effective settings as JSON, secrets masked, local paths resolved."""
    effective = _settings(api_url=api_url, data_dir=data_dir)
    sys.stdout.write(orjson.dumps(effective.masked(), option=orjson.OPT_INDENT_2).decode() + "\n")


@app.command("fetch")
def fetch_cmd(api_url: ApiUrl = None) -> None:
    """Fetch and validate products, users and carts; print the counts. Stores nothing."""
    from ey_platform.pipelines.extract import count_valid
    from ey_platform.source.client import FakeStoreClient

    with FakeStoreClient.from_settings(_settings(api_url=api_url)) as client:
        _print_counts([count_valid(client, entity) for entity in ENTITIES])


def _table(*headers: str, title: str) -> Table:
    """A table whose cells fold onto a second line rather than lose characters when the
    terminal is too narrow for it."""
    return Table(*(Column(header, overflow="fold") for header in headers), title=title)


def _print_counts(rows: list[Any]) -> None:
    table = _table("entity", "extracted", "valid", "quarantined", title="Fetched and validated")
    for row in rows:
        table.add_row(row.entity, str(row.extracted), str(row.valid), str(row.rejected))
    console.print(table)


def _parse_day(value: str | None) -> date:
    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--date: expected YYYY-MM-DD, got {value!r}") from None


@contextmanager
def _progress_bar() -> Iterator[BatchProgress | None]:
    """A bar per entity on stderr when it is a terminal, log lines printed above it;
    nothing otherwise (the log lines tell the progress)."""
    if not sys.stderr.isatty():
        yield None
        return
    bars = _Bars(Console(stderr=True))
    with logging_through(bars.bar.console), bars.bar:  # before the bar replaces sys.stderr
        try:
            yield bars.update
        except BaseException:
            bars.finish(complete=False)
            raise
        bars.finish(complete=True)


class _Bars:
    """One bar per entity, in the order the pipeline runs them: records (of the total
    when it is known), records per second, elapsed time."""

    def __init__(self, console: Console) -> None:
        columns = (TextColumn("{task.description}"), BarColumn(), _Records(), _Rate())
        self.bar = Progress(*columns, TimeElapsedColumn(), console=console)
        self.tasks: dict[str, TaskID] = {}
        self.current: str | None = None
        self.records, self.known = 0, False

    def update(self, entity: str, records: int, total: int | None = None) -> None:
        if entity != self.current:
            self.finish(complete=True)  # the pipeline has moved on to the next entity
            self.current, self.known = entity, False
            self.tasks[entity] = self.bar.add_task(entity, total=None, known=False)
        if total is None:
            self.bar.update(self.tasks[entity], completed=records)
        else:
            self.bar.update(self.tasks[entity], completed=records, total=total, known=True)
        self.records, self.known = records, self.known or total is not None

    def finish(self, *, complete: bool) -> None:
        """Stop the clock of the current entity; complete without a known total, its bar
        shows full."""
        if self.current is None:
            return
        task = self.tasks[self.current]
        if complete and not self.known:
            self.bar.update(task, total=max(self.records, 1))
        self.bar.stop_task(task)
        self.current = None


class _Records(ProgressColumn):
    """``1,234 / 20,000 records``, or ``1,234 records`` while the total is unknown."""

    def render(self, task: Task) -> Text:
        total = f" / {task.total:,.0f}" if task.fields.get("known") and task.total else ""
        return Text(f"{task.completed:,.0f}{total} records", style="progress.download")


class _Rate(ProgressColumn):
    """Records per second since the entity started."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        if not elapsed or not task.completed:
            return Text("")
        return Text(f"{task.completed / elapsed:,.0f} records/s", style="progress.data.speed")


def run_batch(
    cfg: Settings, day: date, entities: list[Entity], from_lake: bool, *, force: bool = False
) -> list[Any]:
    """Run the batch under the job lock; returns the per-entity results."""
    from ey_platform.locks import job_lock
    from ey_platform.pipelines.batch import BatchPipeline
    from ey_platform.source.client import FakeStoreClient

    with job_lock(cfg.data_dir / "locks" / "batch.lock", "batch"), _progress_bar() as progress:
        client = None if from_lake else FakeStoreClient.from_settings(cfg)
        try:
            pipeline = BatchPipeline(
                make_lake(cfg),
                make_warehouse(cfg),
                client,
                progress=progress,
                part_bytes=cfg.batch.part_mb << 20,
                workers=cfg.batch.workers,
                min_rows_fraction=cfg.batch.min_rows_fraction,
            )
            return pipeline.run(entities, day, from_lake=from_lake, force=force)
        finally:
            if client is not None:
                client.close()


def _print_batch(results: list[Any]) -> None:
    """The results, then :class:`BatchHeld` if a guard held an entity."""
    runs = sorted({f"{r.day} (run {r.run_id})" for r in results})
    table = _table(
        "entity",
        "status",
        "extracted",
        "quarantined",
        "landed",
        "loaded",
        "seconds",
        title=f"Batch {', '.join(runs)}",
    )
    for r in results:
        table.add_row(
            r.entity,
            r.status,
            f"{r.extracted:,}",
            f"{r.quarantined:,}",
            f"{r.landed:,}",
            f"{r.loaded:,}",
            f"{r.seconds:.2f}",
        )
    console.print(table)
    _raise_if_held(results)


def _raise_if_held(results: list[Any]) -> list[Any]:
    """``results``, unless a guard held an entity: then :class:`BatchHeld`."""
    held = [f"{r.entity} {r.day}: {r.reason}" for r in results if r.status == "held"]
    if held:
        raise BatchHeld(f"batch held: {'; '.join(held)}; rerun with --force to load it anyway")
    return results


@app.command("batch")
def batch_cmd(
    day: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--date", help="Ingestion date YYYY-MM-DD (UTC). Default: today."),
    ] = None,
    entity: Annotated[BatchEntity, typer.Option(help="Which entity to ingest.")] = BatchEntity.all,
    from_lake: Annotated[
        bool, typer.Option("--from-lake", help="Reload the date from the lake; no API call.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Load a day that the guard holds: fewer rows than "
            "EYP_BATCH__MIN_ROWS_FRACTION of the last loaded day.",
        ),
    ] = False,
    api_url: ApiUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Daily batch: products and users, API -> raw lake -> warehouse. Safe to re-run.

    Exit code 1 if a guard held an entity (see --force).
    """
    cfg = _settings(api_url=api_url, data_dir=data_dir)
    entities: list[Entity] = (
        list(BATCH_ENTITIES) if entity is BatchEntity.all else [cast(Entity, entity.value)]
    )
    _print_batch(run_batch(cfg, _parse_day(day), entities, from_lake, force=force))


@contextmanager
def _stream_parts(cfg: Settings) -> Iterator[StreamParts]:
    """Poller, consumer, bus, poller state and warehouse from settings, closed afterwards."""
    from functools import partial

    from ey_platform.backends import make_bus
    from ey_platform.pipelines.poller_state import PollerState
    from ey_platform.pipelines.stream import (
        CartConsumer,
        CartPoller,
        StreamParts,
        landed_cart_states,
    )
    from ey_platform.source.client import FakeStoreClient

    with ExitStack() as opened:  # each part closed even if a later one fails to open
        bus = make_bus(cfg)
        opened.callback(bus.close)
        bus.setup()
        warehouse = make_warehouse(cfg)
        warehouse.setup()
        lake = make_lake(cfg)
        lake.setup()
        state = PollerState(cfg.poller_state_path)
        opened.callback(state.close)
        client = opened.enter_context(FakeStoreClient.from_settings(cfg))
        poller = CartPoller(
            client,
            bus,
            state,
            lake,
            landed=partial(landed_cart_states, warehouse),
            reconcile_every=cfg.stream.reconcile_every * 60,
            max_delete_fraction=cfg.stream.max_delete_fraction,
        )
        consumer = CartConsumer(bus, warehouse.event_sink(), cfg.stream.batch_size)
        yield StreamParts(poller, consumer, bus, state, warehouse)


Interval = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option(
        "--interval",
        min=0.1,
        help=f"Seconds between polls {_env('EYP_STREAM__POLL_INTERVAL')}.",
    ),
]


@stream_app.command("poll")
def stream_poll(
    interval: Interval = None,
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit.")] = False,
    allow_mass_delete: Annotated[
        bool,
        typer.Option(
            "--allow-mass-delete",
            help="With --once: publish a poll that deletes more than "
            "EYP_STREAM__MAX_DELETE_FRACTION of the carts the poller knows.",
        ),
    ] = False,
    api_url: ApiUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Poll the carts and publish created, updated and deleted events."""
    from ey_platform.pipelines.stream import Stopper, poll_every

    if allow_mass_delete and not once:
        raise ConfigError("--allow-mass-delete needs --once: it accepts one poll, not every one")
    cfg = _settings(api_url=api_url, data_dir=data_dir)
    stopper = Stopper()
    stopper.install()
    with _stream_parts(cfg) as parts:
        poll_every(
            parts.poller,
            interval or cfg.stream.poll_interval,
            stopper,
            once=once,
            allow_mass_delete=allow_mass_delete,
        )


@stream_app.command("consume")
def stream_consume(
    drain: Annotated[
        bool, typer.Option("--drain", help="Exit once the subscription is empty.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Land cart events in bq_raw.carts_events, exactly once.

    SIGINT and SIGTERM finish the batch in hand, then exit.
    """
    from ey_platform.pipelines.stream import Stopper

    cfg = _settings(data_dir=data_dir)
    stopper = Stopper()
    stopper.install()
    with _stream_parts(cfg) as parts:
        stopper.consumers.append(parts.consumer)
        result = parts.consumer.run(drain=drain)
    console.print(
        f"consumed {result.pulled:,} messages: {result.loaded:,} loaded, "
        f"{result.duplicates:,} duplicates skipped, {result.dead_lettered:,} "
        f"dead-lettered in {result.seconds:.2f}s",
        highlight=False,
    )


@stream_app.command("run")
def stream_run(interval: Interval = None, api_url: ApiUrl = None, data_dir: DataDir = None) -> None:
    """Run the poller and the consumer together until SIGINT/SIGTERM."""
    from ey_platform.pipelines.stream import Stopper, run_both

    cfg = _settings(api_url=api_url, data_dir=data_dir)
    stopper = Stopper()
    stopper.install()
    with _stream_parts(cfg) as parts:
        run_both(parts.poller, parts.consumer, interval or cfg.stream.poll_interval, stopper)


@stream_app.command("status")
def stream_status(data_dir: DataDir = None) -> None:
    """Backlog, oldest unacked message, dead letters, last poll and throughput."""
    from ey_platform.backends import open_bus_read_only
    from ey_platform.pipelines.poller_state import PollerState
    from ey_platform.pipelines.stream import stream_status as status

    cfg = _settings(data_dir=data_dir)
    with ExitStack() as opened:  # read-only: creates nothing, writes nothing
        bus = open_bus_read_only(cfg)
        if bus is not None:
            opened.callback(bus.close)
        state = PollerState.open_read_only(cfg.poller_state_path)
        if state is not None:
            opened.callback(state.close)
        facts = status(bus, state, make_warehouse(cfg, read_only=True))
    table = _table("", "", title="Stream")
    for key, value in facts.items():
        table.add_row(key, value)
    console.print(table)


@fakestore_app.command("serve")
def fakestore_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 8765,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 42,
    products: Annotated[int, typer.Option(min=1, help="Number of products.")] = 20,
    users: Annotated[int, typer.Option(min=1, help="Number of users.")] = 10,
    carts: Annotated[int, typer.Option(min=0, help="Number of carts.")] = 7,
    live_rate: Annotated[
        float, typer.Option(min=0, help="Changes per second to carts (and prices); 0: still.")
    ] = 0.0,
    faults: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Fault plan, e.g. 'error=x2,ratelimit=0.1,latency=0.05'."),
    ] = None,
) -> None:
    """Serve a FakeStore-compatible API with synthetic data (Ctrl-C stops it)."""
    import uvicorn

    from ey_platform.source.data import Catalog
    from ey_platform.source.faults import FaultPlan
    from ey_platform.source.server import create_app, free_port

    try:
        plan = FaultPlan.parse(faults, seed)
    except ValueError as exc:
        raise ConfigError(f"--faults: {exc}") from None
    catalog = Catalog(seed, products, users, carts)
    port = port or free_port(host)
    console.print(
        f"FakeStore on http://{host}:{port} ({products} products, {users} users, {carts} carts)",
        highlight=False,
    )
    uvicorn.run(create_app(catalog, plan, live_rate), host=host, port=port, log_level="warning")


@app.command("transform")
def transform_cmd(
    quiet: Annotated[bool, typer.Option("--quiet", help="Only dbt's errors.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Build the star schema with dbt build: staging, snapshot, marts, data tests.

    dbt's unit tests run in the test suite, not in production builds, as dbt advises.
    """
    from ey_platform.transform import BUILD, run_dbt

    outcome = run_dbt(_settings(data_dir=data_dir), *BUILD, quiet=quiet)
    warned = f", {len(outcome.warnings)} warnings" if outcome.warnings else ""
    console.print(
        f"dbt build: {outcome.passed} nodes passed in {outcome.seconds:.1f}s{warned}",
        highlight=False,
    )


@app.command("docs")
def docs_cmd(data_dir: DataDir = None) -> None:
    """Generate the dbt documentation site (lineage included) as static files."""
    from ey_platform.transform import run_dbt

    cfg = _settings(data_dir=data_dir)
    run_dbt(cfg, "docs", "generate", "--static", quiet=True)
    site = cfg.data_dir.resolve() / "dbt" / "target" / "static_index.html"
    console.print(f"documentation: {site}", highlight=False)


@app.command("demo")
def demo_cmd(api_url: ApiUrl = None, data_dir: DataDir = None) -> None:
    """Run the main job end to end and print a summary.

    Against the bundled server (or --api-url): the batch, one poll, a drained consume
    and dbt build, on the profile's backends (embedded defaults, or --profile gcp).
    """
    from ey_platform.pipelines.demo import summarize
    from ey_platform.source.client import FakeStoreClient
    from ey_platform.transform import BUILD, run_dbt

    with _api(api_url) as url:
        cfg = _settings(api_url=url, data_dir=data_dir)
        _print_batch(
            run_batch(cfg, datetime.now(UTC).date(), list(BATCH_ENTITIES), False, force=False)
        )
        with _stream_parts(cfg) as parts:
            parts.poller.poll_once()
            parts.consumer.run(drain=True)
        run_dbt(cfg, *BUILD, quiet=True)
        with FakeStoreClient.from_settings(cfg) as client:
            _print_summary(summarize(make_warehouse(cfg), client))


def _print_summary(summary: Any) -> None:
    layers = _table("layer", "table", "rows", title="Rows at every layer")
    for layer, name, rows in summary.layers:
        layers.add_row(layer, name, f"{rows:,}")
    console.print(layers)
    verdict = "[green]reconciled[/green]" if summary.reconciled else "[red]MISMATCH[/red]"
    console.print(
        f"Carts: {summary.source_carts:,} at the source = {summary.event_carts:,} "
        f"in {summary.events_table} (latest, deletions applied) = "
        f"{summary.fact_carts:,} in fact_orders: {verdict}"
    )
    revenue = _table("category", "items", "revenue", title="Revenue by category")
    for category, amount, items in summary.revenue:
        revenue.add_row(category, f"{items:,}", f"{amount:,.2f}")
    revenue.add_row("[b]total[/b]", "", f"[b]{summary.total_revenue:,.2f}[/b]")
    console.print(revenue)


@app.command("up")
def up_cmd(
    now: Annotated[
        bool, typer.Option("--now", help="Run the batch and transform at start.")
    ] = False,
    api_url: ApiUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Run the whole platform until SIGTERM.

    The poller, the consumer, the daily batch at EYP_BATCH__RUN_AT (UTC), and the
    transform after it and every EYP_STREAM__TRANSFORM_EVERY minutes. Started after the
    run time, it runs the day's batch at once unless it has already finished; a failed
    batch is retried after EYP_BATCH__RETRY_AFTER minutes.
    """
    from datetime import timedelta

    from ey_platform.pipelines.batch import day_finished
    from ey_platform.pipelines.platform import Scheduler
    from ey_platform.pipelines.stream import Stopper
    from ey_platform.transform import BUILD, run_dbt

    cfg = _settings(api_url=api_url, data_dir=data_dir)
    stopper = Stopper()
    stopper.install()
    with _stream_parts(cfg) as parts:
        Scheduler(
            parts.poller,
            parts.consumer,
            # A held day is retried like a failed one: the API may answer whole again.
            batch=lambda day: _raise_if_held(run_batch(cfg, day, list(BATCH_ENTITIES), False)),
            transform=lambda: run_dbt(cfg, *BUILD, quiet=True),
            poll_interval=cfg.stream.poll_interval,
            batch_at=cfg.batch.run_at,
            transform_every=timedelta(minutes=cfg.stream.transform_every),
            batch_finished=lambda day: day_finished(parts.warehouse, day, BATCH_ENTITIES),
            retry_after=timedelta(minutes=cfg.batch.retry_after),
        ).run(stopper, batch_now=now)


def _api(api_url: str | None) -> AbstractContextManager[str]:
    """The given API, or the bundled server on a free loopback port while in use."""
    from ey_platform.source.server import create_app, serve_in_thread

    return nullcontext(api_url) if api_url else serve_in_thread(create_app())


# What the system says when a file cannot be written (as opposed to found or read).
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def _os_error(exc: OSError) -> str:
    """``cannot write /data/lake/x: No space left on device``. A write to an open file
    fails without a path: then the data folder is named."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    verb = "cannot write" if exc.errno in _WRITE_ERRORS else "cannot access"
    if exc.filename is not None:
        paths = [os.fsdecode(exc.filename)]
        if exc.filename2 is not None:
            paths.append(os.fsdecode(exc.filename2))
        return f"{verb} {' -> '.join(paths)}: {reason}"
    if exc.errno in _WRITE_ERRORS and _state["data_dir"] is not None:
        return f"{verb} under {Path(_state['data_dir']).resolve()}: {reason}"
    return reason


def main() -> None:
    """Entry point: a platform error is one line on stderr and exit code 1 (2 for bad
    configuration), and so is a disk or permission error; ``--debug`` shows the
    traceback."""
    tune_allocator()
    try:
        app(standalone_mode=True, prog_name="ey-platform")  # also for python -m
    except (PlatformError, OSError) as exc:
        if _state["debug"]:
            raise
        message = _os_error(exc) if isinstance(exc, OSError) else str(exc)
        sys.stderr.write(f"error: {message}\n")
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
