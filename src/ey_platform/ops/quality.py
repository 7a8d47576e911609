"""The batch's data-quality checks: the volume of a day against the entity's recent
days, and the shape of its records (fields and their JSON types) against the last
loaded run. Pure functions: the batch runs them, records their results in
``bq_raw._quality_results`` and holds a day that fails.

The shape of a run is profiled from a sample of each batch the API sends: every
record of a small batch, :data:`PROFILE_SAMPLE` records spread over a large one.
Profiling a record costs about 14 µs of Python (a users record: parse and walk), so all
of 1M users would be 14 CPU-s on top of a batch of 8.5 s; the sample costs well under a
second. A field that only a few records of a large answer carry could therefore be
missed by one run and seen by the next: only the fields at least 1% of the sampled
records hold are judged (:data:`MIN_SHARE`), and the types at least 1% of a field's
values have. JSON has one number type: an integer and a decimal are both ``number``, so
a price that is sometimes whole does not look retyped; and ``null`` goes with any type,
so a field that is sometimes null does not either.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import orjson

from ey_platform.warehouse.base import QualityResult

log = logging.getLogger("ey_platform.quality")

PROFILE_SAMPLE = 256
"""Records profiled per batch of the API's answer at most."""

MIN_SHARE = 0.01
"""The share of the sampled records a field must be in to be judged, and of a field's
values a type must have: rarer ones come and go with the sample."""

SchemaPolicy = Literal["evolve", "warn", "freeze"]


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check, before it is stamped with a run."""

    check_name: str
    status: Literal["pass", "warn", "fail"]
    observed: str
    expected: str
    detail: str | None = None

    def result(self, run_id: str, job: str, entity: str, at: datetime) -> QualityResult:
        """The check as a row of ``_quality_results``."""
        return QualityResult(
            run_id,
            job,
            self.check_name,
            entity,
            self.status,
            self.observed,
            self.expected,
            self.detail,
            at,
        )


def log_results(results: Iterable[QualityResult]) -> None:
    """Log each result that did not pass as ``quality.failed`` (monitoring keys on it):
    an error for ``fail``, a warning for ``warn``."""
    for result in results:
        if result.status == "pass":
            continue
        (log.error if result.status == "fail" else log.warning)(
            "quality.failed",
            extra={
                "check_name": result.check_name,
                "entity": result.entity,
                "status": result.status,
                "observed": result.observed,
                "expected": result.expected,
            },
        )


@dataclass(frozen=True, slots=True)
class Shape:
    """The fields of a sample of records: for each path (``address.geolocation.lat``,
    ``products[].quantity``), how many sampled records held it with each JSON type."""

    records: int = 0
    fields: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """As the manifest stores it: paths in order."""
        return {
            "records": self.records,
            "fields": {
                path: dict(sorted(self.fields[path].items())) for path in sorted(self.fields)
            },
        }

    @classmethod
    def from_json(cls, stored: Any) -> Shape | None:
        """The shape a manifest stores, or None if it holds none (or not in this form)."""
        if not isinstance(stored, dict) or not isinstance(stored.get("fields"), dict):
            return None
        try:
            fields = {
                str(path): {str(t): int(n) for t, n in types.items()}
                for path, types in stored["fields"].items()
            }
            return cls(int(stored["records"]), fields)
        except (AttributeError, KeyError, TypeError, ValueError):
            return None

    def common(self) -> dict[str, frozenset[str]]:
        """The fields at least :data:`MIN_SHARE` of the records hold, each with the types
        at least that share of its values have (null apart: it goes with any type)."""
        floor = MIN_SHARE * self.records
        found = {}
        for path, types in self.fields.items():
            held = sum(types.values())
            if held >= floor:
                kinds = {t for t, n in types.items() if t != "null" and n >= MIN_SHARE * held}
                found[path] = frozenset(kinds)
        return found


def profile_lines(jsonl: bytes, sample: int = PROFILE_SAMPLE) -> Shape:
    """The shape of a sample of the records of ``jsonl`` (one a line): all of them up to
    ``sample``, else ``sample`` spread over them, the first and the last included."""
    lines = jsonl.splitlines()
    step = max(1, len(lines) // sample)
    picked = lines[::step]
    if lines and (len(lines) - 1) % step:
        picked.append(lines[-1])
    fields: dict[str, dict[str, int]] = {}
    records = 0
    for line in picked:
        if line:
            seen: dict[str, set[str]] = {}
            _walk(orjson.loads(line), "", seen)
            records += 1
            for path, types in seen.items():
                counts = fields.setdefault(path, {})
                for kind in types:
                    counts[kind] = counts.get(kind, 0) + 1
    return Shape(records, fields)


def _walk(value: Any, path: str, found: dict[str, set[str]]) -> None:
    if isinstance(value, dict):
        if path:
            found.setdefault(path, set()).add("object")
        for key, inner in value.items():
            _walk(inner, f"{path}.{key}" if path else str(key), found)
    elif isinstance(value, list):
        found.setdefault(path, set()).add("array")
        for inner in value:
            _walk(inner, f"{path}[]", found)
    else:
        found.setdefault(path, set()).add(_json_type(value))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def merge(shapes: Iterable[Shape]) -> Shape:
    records = 0
    fields: dict[str, dict[str, int]] = {}
    for shape in shapes:
        records += shape.records
        for path, types in shape.fields.items():
            counts = fields.setdefault(path, {})
            for kind, n in types.items():
                counts[kind] = counts.get(kind, 0) + n
    return Shape(records, fields)


def schema_check(previous: Shape | None, current: Shape, policy: SchemaPolicy) -> Check:
    r"""The common fields of ``current`` (:meth:`Shape.common`) against those of the last
    loaded run: added, removed and retyped fields. A drift ``fail``\s under freeze (the
    day is held), ``warn``\s under warn (recorded and alerted) and passes under evolve
    (recorded, nothing more)."""
    now = current.common()
    shown = f"{len(now)} fields"
    if previous is None:
        return Check("schema", "pass", shown, "no earlier run to compare with")
    before = previous.common()
    added = sorted(now.keys() - before.keys())
    removed = sorted(before.keys() - now.keys())
    retyped = [
        f"{path} {'/'.join(sorted(before[path]))} -> {'/'.join(sorted(now[path]))}"
        for path in sorted(now.keys() & before.keys())
        if before[path] and now[path] and before[path] != now[path]
    ]
    expected = f"the {len(before)} fields of the last loaded run"
    changes = [
        f"{label}: {', '.join(items)}"
        for label, items in (("added", added), ("removed", removed), ("retyped", retyped))
        if items
    ]
    if not changes:
        return Check("schema", "pass", shown, expected)
    status: Literal["pass", "warn", "fail"] = (
        "fail" if policy == "freeze" else "warn" if policy == "warn" else "pass"
    )
    return Check(
        "schema",
        status,
        f"{shown}; {'; '.join(changes)}",
        expected,
        detail=f"schema drift under EYP_BATCH__SCHEMA_POLICY={policy}",
    )


def volume_check(
    entity: str, records: int, recent: Sequence[tuple[date, int]], min_fraction: float
) -> Check:
    """``records`` against the median row count of the ``recent`` loaded days: fewer
    than ``min_fraction`` of it, or none at all (a complete answer is never empty),
    fails."""
    observed = f"{records:,} records"
    if not records:
        return Check(
            "volume", "fail", observed, "at least 1", f"the API answered no valid {entity} record"
        )
    if not recent:
        return Check("volume", "pass", observed, "no loaded day to compare with")
    median = statistics.median(rows for _, rows in recent)
    expected = (
        f">= {min_fraction:.0%} of {median:,g}, the median of the last {len(recent)} loaded days"
    )
    if records >= min_fraction * median:
        return Check("volume", "pass", observed, expected)
    days = ", ".join(f"{day}: {rows:,}" for day, rows in recent)
    return Check(
        "volume",
        "fail",
        observed,
        expected,
        detail=f"{records:,} {entity} records, fewer than {min_fraction:.0%} of the median "
        f"{median:,g} of the last loaded days ({days}) (EYP_BATCH__MIN_ROWS_FRACTION)",
    )
