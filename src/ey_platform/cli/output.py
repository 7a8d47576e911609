"""What the command line prints: tables that fold rather than cut, and the batch's
progress bars."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

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

from ey_platform.logs import json_lines, logging_through
from ey_platform.pipelines.batch import raise_if_held

if TYPE_CHECKING:
    from ey_platform.pipelines.batch import Progress as BatchProgress

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)
KEPT_BARS = 6
"""Bars shown at most: a backfill of many days drops its oldest."""


def table(*headers: str, title: str) -> Table:
    """A table whose cells fold onto a second line rather than lose characters when the
    terminal is too narrow for it."""
    return Table(*(Column(header, overflow="fold") for header in headers), title=title)


def print_counts(rows: list[Any]) -> None:
    shown = table("entity", "extracted", "valid", "quarantined", title="Fetched and validated")
    for row in rows:
        shown.add_row(row.entity, str(row.extracted), str(row.valid), str(row.rejected))
    console.print(shown)


@contextmanager
def progress_bar() -> Iterator[BatchProgress | None]:
    """A bar per entity on stderr when it is a terminal, log lines printed above it;
    nothing otherwise (the log lines tell the progress), nor under JSON log lines, which
    are for a machine to read."""
    if not sys.stderr.isatty() or json_lines():
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
            if len(self.tasks) >= KEPT_BARS:
                self.bar.remove_task(self.tasks.pop(next(iter(self.tasks))))
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


def print_batch(results: list[Any]) -> None:
    """The results, then :class:`BatchHeld` if a guard held an entity."""
    runs = sorted({f"{r.day} (run {r.run_id})" for r in results})
    shown = table(
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
        shown.add_row(
            r.entity,
            r.status,
            f"{r.extracted:,}",
            f"{r.quarantined:,}",
            f"{r.landed:,}",
            f"{r.loaded:,}",
            f"{r.seconds:.2f}",
        )
    console.print(shown)
    raise_if_held(results)


def print_backfill(results: list[Any]) -> None:
    """A row per day and entity, then :class:`BatchHeld` if a guard held one. ``rows``:
    the valid records of the day's run in the lake, loaded, already in the warehouse
    (unchanged) or held back (held)."""
    span = f" {results[0].day} to {results[-1].day}" if results else ""
    shown = table("day", "entity", "status", "rows", "seconds", title=f"Backfill{span}")
    for r in results:
        ran = r.status != "missing"
        rows, seconds = (f"{r.landed:,}", f"{r.seconds:.2f}") if ran else ("", "")
        shown.add_row(str(r.day), r.entity, r.status, rows, seconds)
    console.print(shown)
    raise_if_held(results)


def print_summary(summary: Any) -> None:
    layers = table("layer", "table", "rows", title="Rows at every layer")
    for layer, name, rows in summary.layers:
        layers.add_row(layer, name, f"{rows:,}")
    console.print(layers)
    verdict = "[green]reconciled[/green]" if summary.reconciled else "[red]MISMATCH[/red]"
    console.print(
        f"Carts: {summary.source_carts:,} at the source = {summary.event_carts:,} "
        f"in {summary.events_table} (latest, deletions applied) = "
        f"{summary.fact_carts:,} in fact_orders: {verdict}"
    )
    revenue = table("category", "items", "revenue", title="Revenue by category")
    for category, amount, items in summary.revenue:
        revenue.add_row(category, f"{items:,}", f"{amount:,.2f}")
    revenue.add_row("[b]total[/b]", "", f"[b]{summary.total_revenue:,.2f}[/b]")
    console.print(revenue)
