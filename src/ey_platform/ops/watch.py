"""Watching a job: every run of batch, transform, a poll or the consumer runs inside
:meth:`Watch.run`, which names the job and run in the logs, counts it in the metrics and
opens or resolves the job's incident (:mod:`.alerts`). What the batch and the transform
find (held days, failed quality checks, stale sources) opens incidents of their own
through :meth:`Watch.quality` and :meth:`Watch.held`."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ey_platform.bus.base import BusStats
from ey_platform.ops import metrics
from ey_platform.ops.alerts import Alerts
from ey_platform.ops.context import job_context, new_run_id
from ey_platform.warehouse.base import QualityResult

log = logging.getLogger("ey_platform.ops")

ACTIONS: Mapping[str, str] = {
    "batch": "read the error above; `ey-platform health` shows the last runs. Fix the "
    "cause (the API, credentials, the warehouse) and rerun `ey-platform batch --date "
    "<day>`: a rerun of a day is safe.",
    "transform": "run `ey-platform transform` to see the failing dbt nodes; "
    "`ey-platform health` lists the tests that failed. Fix the cause and run it again.",
    "poll": "`ey-platform stream status` shows the last poll; the poller retries every "
    "interval and loses nothing while the API is away.",
    "consume": "`ey-platform stream status` shows the backlog; restart the consumer "
    "(`ey-platform stream consume`): what it had not acknowledged is delivered again.",
}
HELD = (
    "compare the API's answer with the day before (the run's files are in the lake); if "
    "the change is real, load it with `ey-platform batch --date <day> --force`."
)
QUALITY = "see `ey-platform health` and bq_raw._quality_results for the check's numbers."
BACKLOG = (
    "`ey-platform stream status`: is the consumer running and landing? Start another "
    "(`ey-platform stream consume`) or find why its writes fail."
)
DEAD_LETTERS = (
    "inspect them (`ey-platform stream status`, the dead-letter topic): each holds why "
    "it was refused; fix the cause, then replay or discard them."
)


@dataclass
class RunOutcome:
    """What a watched run reports of itself before it ends."""

    status: str = "ok"
    rows: dict[str, int] = field(default_factory=dict)


class Watch:
    def __init__(self, alerts: Alerts, job: str) -> None:
        self.alerts, self.job = alerts, job
        self._working = False

    def working(self) -> None:
        """A long-running job (the consumer) did its work once: its failure, if one is
        open, is over now rather than when the run ends. Once per watch."""
        if not self._working:
            self._working = True
            self.alerts.resolve(f"{self.job}.failed", self.job)

    @contextmanager
    def run(self, run_id: str | None = None) -> Iterator[RunOutcome]:
        """Run the block as one run of the job (``run_id``, or a new one): a failure is
        logged as ``job.failed``, counted and alerted, then raised again; a success
        resolves the failure."""
        run_id = run_id or new_run_id(datetime.now(UTC))
        outcome = RunOutcome()
        with job_context(self.job, run_id):
            started = time.perf_counter()
            try:
                yield outcome
            except Exception as exc:
                error = " ".join(str(exc).split()) or type(exc).__name__
                log.error("job.failed", extra={"error": error})
                metrics.record_run(self.job, "failed", time.perf_counter() - started)
                self.alerts.open(
                    f"{self.job}.failed", self.job, f"failed: {error}", ACTIONS[self.job], run_id
                )
                raise
            metrics.record_run(
                self.job, outcome.status, time.perf_counter() - started, outcome.rows
            )
            self.alerts.resolve(f"{self.job}.failed", self.job)

    def held(self, entity: str, reason: str | None, run_id: str | None) -> None:
        """Open (``reason`` given) or resolve the incident of ``entity``'s held day."""
        key = f"{self.job}.held:{entity}"
        if reason is None:
            self.alerts.resolve(key, self.job)
        else:
            self.alerts.open(key, self.job, f"{entity} held: {reason}", HELD, run_id)

    def quality(self, results: Iterable[QualityResult], *, covered: Iterable[str] = ()) -> None:
        """Open an incident per check that did not pass, resolve the ones that did;
        the entities of ``covered`` are alerted already (a held day) and open none. A
        source's freshness alerts past its error limit only: its warning is for
        ``health`` and the dashboard (carts_events, which lands only changes, only warns)."""
        skip = set(covered)
        for result in results:
            key = f"quality.{result.check_name}:{result.entity}"
            quiet = result.check_name == "freshness" and result.status == "warn"
            if result.status == "pass" or quiet:
                self.alerts.resolve(key, self.job)
            elif result.entity not in skip:
                summary = (
                    f"{result.check_name} of {result.entity} is {result.status}: "
                    f"{result.observed} (expected {result.expected})"
                )
                self.alerts.open(key, self.job, summary, QUALITY, result.run_id)


def watch_bus(alerts: Alerts, stats: BusStats | None, backlog_age: float) -> None:
    """Open or resolve the stream's incidents: the oldest unacknowledged message older
    than ``backlog_age`` seconds, and dead letters present. ``stats`` None or without
    counts: the bus cannot count (Pub/Sub: Cloud Monitoring alerts on it)."""
    if stats is None or stats.backlog is None:
        return
    oldest = stats.oldest_unacked_seconds or 0.0
    if oldest > backlog_age:
        summary = (
            f"the oldest of {stats.backlog:,} unacked messages has waited {oldest / 60:.0f} min "
            f"(limit {backlog_age / 60:g} min, EYP_ALERTS__BACKLOG_AGE)"
        )
        alerts.open("stream.backlog", "consume", summary, BACKLOG, None)
    else:
        alerts.resolve("stream.backlog", "consume")
    if stats.dead_letters:
        summary = f"{stats.dead_letters:,} messages are dead-lettered"
        alerts.open("stream.dead_letters", "consume", summary, DEAD_LETTERS, None)
    else:
        alerts.resolve("stream.dead_letters", "consume")
