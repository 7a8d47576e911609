"""``ey-platform health``: is the platform well, and if not, where. Only reads.

One finding per thing an on-call engineer checks: the last run of each job, the
freshness of each source (judged now, with dbt's limits from ``_sources.yml``), the
bus's backlog and dead letters, the last result of each quality check, and the
incidents still open. A finding is ``ok``, ``warn`` (worth a look) or ``fail``; the
platform is healthy when nothing fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ey_platform.bus.base import BusStats
from ey_platform.state.base import PollResult
from ey_platform.warehouse.base import Incident, QualityResult, RunRecord

Status = Literal["ok", "warn", "fail"]
Limits = Mapping[str, tuple[timedelta | None, timedelta | None]]

_GOOD_RUNS = frozenset({"loaded", "unchanged", "ok", "running"})


@dataclass(frozen=True, slots=True)
class Finding:
    area: str
    """``job``, ``freshness``, ``stream``, ``quality`` or ``incident``."""
    subject: str
    status: Status
    detail: str


@dataclass(frozen=True)
class Health:
    findings: list[Finding]

    @property
    def healthy(self) -> bool:
        return all(f.status != "fail" for f in self.findings)

    def as_json(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "findings": [asdict(f) for f in self.findings]}


def _utc(moment: datetime) -> str:
    """``2026-12-02 05:00:00Z``, whatever zone the warehouse answered in."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"


def age(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.5 h``, ``2.0 d``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def job_findings(runs: Sequence[RunRecord], last_poll: PollResult | None) -> list[Finding]:
    found = []
    for run in runs:
        status: Status = "ok" if run.status in _GOOD_RUNS else "fail"
        when = run.finished_at or run.started_at
        detail = f"{run.status} at {_utc(when)} (run {run.run_id})"
        if run.loaded is not None and run.job == "batch":
            detail += f", {run.loaded:,} rows loaded"
        if run.error:
            detail += f": {run.error}"
        found.append(Finding("job", f"{run.job} {run.entity}", status, detail))
    if last_poll is None:
        found.append(Finding("job", "poll", "ok", "no poll recorded on this machine"))
    else:
        at = datetime.fromtimestamp(last_poll.started_at, UTC)
        ok: Status = "fail" if last_poll.status == "failed" else "ok"
        detail = f"{last_poll.status} at {_utc(at)}, {last_poll.fetched:,} carts"
        if last_poll.error:
            detail += f": {last_poll.error}"
        found.append(Finding("job", "poll", ok, detail))
    return found


def freshness_findings(
    loaded_at: Mapping[str, datetime | None], limits: Limits, now: datetime
) -> list[Finding]:
    found = []
    for source, newest in loaded_at.items():
        warn, error = limits.get(source, (None, None))
        shown = _limits(warn, error)
        if newest is None:
            status: Status = "fail" if error is not None else "warn"
            found.append(Finding("freshness", source, status, f"never loaded ({shown})"))
            continue
        late = now - newest
        status = "ok"
        if error is not None and late > error:
            status = "fail"
        elif warn is not None and late > warn:
            status = "warn"
        detail = f"last loaded {age(late.total_seconds())} ago ({shown})"
        found.append(Finding("freshness", source, status, detail))
    return found


def _limits(warn: timedelta | None, error: timedelta | None) -> str:
    parts = [
        f"{name} after {age(limit.total_seconds())}"
        for name, limit in (("warn", warn), ("error", error))
        if limit is not None
    ]
    return ", ".join(parts) or "no limit"


def stream_findings(stats: BusStats | None, backlog_age: float) -> list[Finding]:
    """``stats`` None: the bus cannot count (Pub/Sub: Cloud Monitoring does)."""
    if stats is None or stats.backlog is None:
        return [Finding("stream", "bus", "ok", "counts are in Cloud Monitoring")]
    oldest = stats.oldest_unacked_seconds or 0.0
    late: Status = "fail" if oldest > backlog_age else "ok"
    dead: Status = "fail" if stats.dead_letters else "ok"
    return [
        Finding(
            "stream",
            "backlog",
            late,
            f"{stats.backlog:,} unacked, oldest {age(oldest)} (limit {age(backlog_age)}, "
            "EYP_ALERTS__BACKLOG_AGE)",
        ),
        Finding("stream", "dead letters", dead, f"{stats.dead_letters or 0:,}"),
    ]


def quality_findings(results: Sequence[QualityResult]) -> list[Finding]:
    """The last result of every check but freshness (judged live instead): each one
    that did not pass, and how many did."""
    judged = [r for r in results if r.check_name != "freshness"]
    found = [
        Finding(
            "quality",
            f"{r.check_name} {r.entity}",
            "fail" if r.status == "fail" else "warn",
            f"{r.observed} (expected {r.expected}) at {_utc(r.checked_at)}",
        )
        for r in judged
        if r.status != "pass"
    ]
    passed = sum(r.status == "pass" for r in judged)
    return [Finding("quality", "checks", "ok", f"{passed} passed at their last run"), *found]


def incident_findings(incidents: Sequence[Incident]) -> list[Finding]:
    return [
        Finding(
            "incident",
            i.incident,
            "warn",
            f"open since {_utc(i.opened_at)}: {i.summary}",
        )
        for i in incidents
    ]
