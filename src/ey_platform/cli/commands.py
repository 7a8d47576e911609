"""The commands of each stage: config, fetch, batch, transform, docs, demo, up and the
bundled server. Each parses its arguments, calls :mod:`ey_platform.wiring` and prints."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, date, datetime
from typing import Annotated, Optional, cast

import orjson
import typer

from ey_platform.cli.output import (
    console,
    print_backfill,
    print_batch,
    print_counts,
    print_summary,
    progress_bar,
)
from ey_platform.cli.root import ApiUrl, BatchEntity, DataDir, app, fakestore_app, settings
from ey_platform.errors import ConfigError
from ey_platform.models import BATCH_ENTITIES, ENTITIES, Entity


@app.command("config")
def config_cmd(api_url: ApiUrl = None, data_dir: DataDir = None) -> None:
    """Print the effective settings as JSON, secrets masked, local paths resolved."""
    effective = settings(api_url=api_url, data_dir=data_dir)
    sys.stdout.write(orjson.dumps(effective.masked(), option=orjson.OPT_INDENT_2).decode() + "\n")


@app.command("fetch")
def fetch_cmd(api_url: ApiUrl = None) -> None:
    """Fetch and validate products, users and carts; print the counts. Stores nothing."""
    from ey_platform.pipelines.extract import count_valid
    from ey_platform.source.client import FakeStoreClient

    with FakeStoreClient.from_settings(settings(api_url=api_url)) as client:
        print_counts([count_valid(client, entity) for entity in ENTITIES])


def _parse_day(value: str | None, option: str = "--date") -> date:
    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option}: expected YYYY-MM-DD, got {value!r}") from None


def _backfill_span(
    day: str | None, start: str | None, end: str | None, *, from_lake: bool
) -> tuple[date, date] | None:
    """The first and last day of a backfill (--start, --end), or None for one day."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise ConfigError("--start and --end go together: the first and last day to reload")
    if not from_lake:
        raise ConfigError("--start/--end reload days from the lake: add --from-lake")
    if day is not None:
        raise ConfigError("--date is one day, --start/--end a range: give one or the other")
    first, last = _parse_day(start, "--start"), _parse_day(end, "--end")
    if last < first:
        raise ConfigError(f"--end {last} is before --start {first}")
    return first, last


_Start = Annotated[
    Optional[str],  # noqa: UP045 - Typer reads the annotation at run time
    typer.Option("--start", help="With --from-lake: first day of a backfill, YYYY-MM-DD."),
]
_End = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--end", help="With --from-lake: last day of a backfill (included)."),
]


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
            help="Load a day that a quality gate holds: fewer rows than "
            "EYP_BATCH__MIN_ROWS_FRACTION of the median of the last 7 loaded days, or a "
            "schema drift under EYP_BATCH__SCHEMA_POLICY=freeze.",
        ),
    ] = False,
    start: _Start = None,
    end: _End = None,
    api_url: ApiUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Daily batch: products and users, API -> raw lake -> warehouse. Safe to re-run.

    With --from-lake --start D1 --end D2, a backfill: each day of the range that the lake
    holds is reloaded as --date would reload it, in date order, its own run and one
    transaction per day and entity; a table of every day and entity ends it, days the
    lake lacks shown as missing. A failure stops the backfill with its error: the days
    before it stay loaded.

    Exit code 1 if a guard held an entity (see --force); a missing day is not an error.
    """
    from ey_platform.wiring import run_backfill, run_batch

    span = _backfill_span(day, start, end, from_lake=from_lake)
    cfg = settings(api_url=api_url, data_dir=data_dir)
    entities: list[Entity] = (
        list(BATCH_ENTITIES) if entity is BatchEntity.all else [cast(Entity, entity.value)]
    )
    with progress_bar() as progress:
        if span is not None:
            results = run_backfill(cfg, *span, entities, force=force, progress=progress)
        else:
            results = run_batch(
                cfg, _parse_day(day), entities, from_lake=from_lake, force=force, progress=progress
            )
    (print_batch if span is None else print_backfill)(results)


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
    full_refresh: Annotated[
        bool,
        typer.Option(
            "--full-refresh", help="Rebuild incremental models from the raw layer (dbt's)."
        ),
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Build the star schema and publish it: dbt source freshness, then dbt build
    (staging, snapshot, marts, data tests) into the private build dataset, then the marts
    published to the analytics dataset (and, locally, the serving file) only if every
    test passed. Every result is recorded in bq_raw._quality_results.

    dbt's unit tests run in the test suite, not in production builds, as dbt advises.
    """
    from ey_platform.wiring import run_transform

    outcome = run_transform(settings(data_dir=data_dir), quiet=quiet, full_refresh=full_refresh)
    warned = f", {len(outcome.warnings)} warnings" if outcome.warnings else ""
    console.print(
        f"dbt build: {outcome.passed} nodes passed in {outcome.seconds:.1f}s{warned}; "
        "marts published",
        highlight=False,
    )


@app.command("docs")
def docs_cmd(data_dir: DataDir = None) -> None:
    """Generate the dbt documentation site (lineage included) as static files."""
    from ey_platform.transform import run_dbt

    cfg = settings(data_dir=data_dir)
    run_dbt(cfg, "docs", "generate", "--static", quiet=True)
    site = cfg.data_dir.resolve() / "dbt" / "target" / "static_index.html"
    console.print(f"documentation: {site}", highlight=False)


@app.command("demo")
def demo_cmd(api_url: ApiUrl = None, data_dir: DataDir = None) -> None:
    """Run the main job end to end, print a summary and write the dashboard.

    Against the bundled server (or --api-url): the batch, one poll, a drained consume
    and the transform (build, tests, publication), on the profile's backends (embedded
    defaults, or --profile gcp); then the dashboard of what it published.
    """
    from ey_platform.serving.dashboard import write_dashboard
    from ey_platform.wiring import run_demo

    with _api(api_url) as url:
        cfg = settings(api_url=url, data_dir=data_dir)
        with progress_bar() as progress:
            summary = run_demo(cfg, progress=progress, batch_done=print_batch)
        print_summary(summary)
    console.print(f"dashboard: {write_dashboard(cfg)}", highlight=False, soft_wrap=True)


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
    batch is retried after EYP_BATCH__RETRY_AFTER minutes. With EYP_METRICS__PORT set,
    /healthz and Prometheus /metrics are served on that port.
    """
    from functools import partial

    from ey_platform.backends import open_bus_read_only
    from ey_platform.ops.metrics import BusReader, serving
    from ey_platform.pipelines.control import Stopper
    from ey_platform.wiring import scheduler, stream_parts

    cfg = settings(api_url=api_url, data_dir=data_dir)
    stopper = Stopper()
    stopper.install()
    with stream_parts(cfg) as parts:
        platform = scheduler(cfg, parts)
        # The scrapes read the bus through connections of their own, never the consumer's.
        endpoint = (
            nullcontext()
            if cfg.metrics.port is None
            else serving(
                cfg.metrics.host,
                cfg.metrics.port,
                health=platform.health,
                bus_stats=BusReader(partial(open_bus_read_only, cfg)),
            )
        )
        with endpoint:
            platform.run(stopper, batch_now=now)


def _api(api_url: str | None) -> AbstractContextManager[str]:
    """The given API, or the bundled server on a free loopback port while in use."""
    from ey_platform.source.server import create_app, serve_in_thread

    return nullcontext(api_url) if api_url else serve_in_thread(create_app())
