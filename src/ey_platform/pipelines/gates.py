"""The batch's quality gates: before a day replaces what the warehouse holds, its
volume is compared with the entity's recent days and its shape with the last loaded
run (:mod:`ey_platform.ops.quality`). Every outcome is recorded in
``bq_raw._quality_results``; a failing one holds the day unless forced."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from ey_platform.errors import LakeError, PlatformError
from ey_platform.lake.base import Lake, manifest_key
from ey_platform.ops.quality import (
    Check,
    SchemaPolicy,
    Shape,
    log_results,
    schema_check,
    volume_check,
)
from ey_platform.pipelines import manifest as manifests
from ey_platform.warehouse.base import LoadMeta, QualityResult, Warehouse

log = logging.getLogger("ey_platform.batch")

RECENT_DAYS = 7
"""Loaded days of an entity whose median row count a new day is compared with."""


@dataclass(frozen=True)
class Verdict:
    results: list[QualityResult]
    held: str | None
    """Why the day is held (None: it may load)."""


class Gates:
    def __init__(
        self,
        lake: Lake,
        warehouse: Warehouse,
        *,
        min_rows_fraction: float,
        schema_policy: SchemaPolicy,
    ) -> None:
        self.lake, self.warehouse = lake, warehouse
        self.min_rows_fraction, self.schema_policy = min_rows_fraction, schema_policy

    def judge(
        self,
        meta: LoadMeta,
        run_id: str,
        records: int,
        shape: Shape | None,
        *,
        now: datetime,
        force: bool = False,
    ) -> Verdict:
        """Run the checks of a day of ``records`` records, record their results, and say
        whether the day is held. Forced, a failed check is recorded as ``warn``: someone
        looked and loaded the day anyway."""
        recent = self.warehouse.recent_day_rows(meta.entity, RECENT_DAYS)
        checks = [volume_check(meta.entity, records, recent, self.min_rows_fraction)]
        if shape is None:
            checks.append(Check("schema", "pass", "not profiled", "a run that profiled"))
        else:
            previous = self._last_shape(meta.entity, recent)
            checks.append(schema_check(previous, shape, self.schema_policy))
        if force:
            checks = [_forced(c) for c in checks]
        results = [c.result(run_id, "batch", meta.entity, now) for c in checks]
        log_results(results)
        try:
            self.warehouse.record_quality(results)
        except PlatformError as exc:  # the gates have judged; their record is not the load
            log.warning("quality.unrecorded", extra={"entity": meta.entity, "error": str(exc)})
        failed = [c for c in checks if c.status == "fail"]
        return Verdict(results, "; ".join(_reason(c) for c in failed) or None)

    def _last_shape(self, entity: str, recent: Sequence[tuple[date, int]]) -> Shape | None:
        """The shape in the manifest of the run the latest loaded day holds, if any."""
        if not recent:
            return None
        day = recent[0][0]
        runs = self.warehouse.partition_runs(entity, day)
        if len(runs) != 1:
            return None
        (run,) = runs
        try:
            manifest = manifests.committed(self.lake, manifest_key(entity, day, run))
        except LakeError as exc:
            log.warning("batch.manifest_unreadable", extra={"error": str(exc)})
            return None
        return Shape.from_json(manifest.get("schema"))


def _forced(check: Check) -> Check:
    if check.status != "fail":
        return check
    detail = (
        f"{check.detail}; loaded anyway with --force" if check.detail else "loaded with --force"
    )
    return Check(check.check_name, "warn", check.observed, check.expected, detail)


def _reason(check: Check) -> str:
    if check.check_name == "schema":
        return f"schema drift: {check.observed} (EYP_BATCH__SCHEMA_POLICY=freeze)"
    return check.detail or f"{check.check_name}: {check.observed}, expected {check.expected}"
