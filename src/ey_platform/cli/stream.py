"""``ey-platform stream``: poll, consume, run, status."""

from __future__ import annotations

from typing import Annotated

import typer

from ey_platform.cli.output import console, table
from ey_platform.cli.root import ApiUrl, DataDir, Interval, settings, stream_app
from ey_platform.errors import ConfigError


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
    from ey_platform.pipelines.control import Stopper, poll_every
    from ey_platform.wiring import stream_parts

    if allow_mass_delete and not once:
        raise ConfigError("--allow-mass-delete needs --once: it accepts one poll, not every one")
    cfg = settings(api_url=api_url, data_dir=data_dir)
    stopper = Stopper()
    stopper.install()
    with stream_parts(cfg) as parts:
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
    from ey_platform.pipelines.control import Stopper
    from ey_platform.wiring import consumer_parts

    cfg = settings(data_dir=data_dir)
    stopper = Stopper()
    stopper.install()
    with consumer_parts(cfg) as parts:
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
    from ey_platform.pipelines.control import Stopper, run_both
    from ey_platform.wiring import stream_parts

    cfg = settings(api_url=api_url, data_dir=data_dir)
    stopper = Stopper()
    stopper.install()
    with stream_parts(cfg) as parts:
        run_both(parts.poller, parts.consumer, interval or cfg.stream.poll_interval, stopper)


@stream_app.command("status")
def stream_status(data_dir: DataDir = None) -> None:
    """Backlog, oldest unacked message, dead letters, last poll and throughput."""
    from ey_platform.wiring import read_stream_status

    facts = read_stream_status(settings(data_dir=data_dir))
    shown = table("", "", title="Stream")
    for key, value in facts.items():
        shown.add_row(key, value)
    console.print(shown)
