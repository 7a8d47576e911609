"""The daily batch: products and users, API -> raw lake -> warehouse, idempotent.

One run of an entity for an ingestion date:

1. extract and validate in batches (:mod:`.extract`);
2. land the valid records as write-once JSONL parts, the rejects in quarantine, then the
   manifest that commits the run to the lake;
3. load: the warehouse stages each part as soon as it is landed and, at the end,
   replaces the date's rows in one transaction.

Counts reconcile at every hop (extracted = valid + quarantined, landed = valid,
loaded = landed) or the run fails and the warehouse is left as it was. A rerun with the
same content as the loaded run still lands its files (every run is kept, write-once) but
leaves the warehouse untouched, so re-running a day changes nothing. The content hash is
taken over the records in order (and the rejects), not over the parts, so the same
records split at other boundaries are the same content.

Before a day replaces what the warehouse holds, the quality gates (:mod:`.gates`)
compare its volume with the median of the entity's last 7 loaded days
(``min_rows_fraction``; none at all always fails) and its fields and JSON types with the
last loaded run (``schema_policy``); their results are recorded in
``bq_raw._quality_results``. A day that fails is held: its files stay in the lake, the
warehouse is untouched, and ``force`` loads it. A reload from the lake first checks
every part against its manifest (size, sha256, records). Each run starts by marking
the runs that died as ``abandoned`` and sweeping the temporary files a killed run left
in the lake. A backfill (:func:`backfill`) reloads a range of days, a day at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from ey_platform.errors import BatchHeld, ConfigError, LakeError, PlatformError, ReconciliationError
from ey_platform.lake.base import Lake, clear_debris, committed_days, manifest_key, manifest_keys
from ey_platform.locks import holder, holder_alive
from ey_platform.models import Entity
from ey_platform.ops.context import new_run_id
from ey_platform.ops.quality import SchemaPolicy, Shape, merge
from ey_platform.pipelines import manifest as manifests
from ey_platform.pipelines.extract import ExtractCounts, extract_jsonl
from ey_platform.pipelines.gates import Gates
from ey_platform.pipelines.landing import Landing
from ey_platform.source.client import FakeStoreClient
from ey_platform.warehouse.base import (
    LoadMeta,
    PartitionLoad,
    QualityResult,
    RunRecord,
    Warehouse,
)

log = logging.getLogger("ey_platform.batch")


class Progress(Protocol):
    """Told how many records of ``entity`` have passed; ``total`` when it is known ahead
    (a reload from the lake)."""

    def __call__(self, entity: str, records: int, total: int | None = None) -> None: ...


def _silent(entity: str, records: int, total: int | None = None) -> None:
    return None


def of_day(progress: Progress | None, day: date) -> Progress | None:
    """``progress`` told ``<entity> <day>``: the bars of a backfill tell its days apart."""
    if progress is None:
        return None
    return lambda entity, records, total=None: progress(f"{entity} {day}", records, total)


def backfill(
    lake: Lake,
    span: tuple[date, date],
    entities: Sequence[Entity],
    reload: Callable[..., list[BatchResult]],
    progress: Progress | None = None,
) -> list[BatchResult]:
    """``reload(day, present, progress=...)`` for each day of ``span`` (both included) in
    order, ``present`` those of ``entities`` of which the lake holds a committed run that
    day; the others are ``missing`` that day. The first failure stops the backfill and
    names its day: the days before it stay loaded."""
    days = committed_days(lake, entities, *span)
    if not any(days.values()):
        where = f"{lake.uri('raw')} from {span[0]} to {span[1]}"
        raise ConfigError(f"no committed {' or '.join(entities)} run in the lake {where}")
    results: list[BatchResult] = []
    for day, present in days.items():
        try:
            done = reload(day, present, progress=of_day(progress, day)) if present else []
        except PlatformError as exc:
            stop = f"backfill stopped at {day} (the days before it stay loaded): {exc}"
            raise type(exc)(stop) from exc
        ran = {r.entity: r for r in done}
        results += [ran.get(e) or BatchResult(e, day, "", "missing") for e in entities]
    return results


# A run on another host is known dead once it is this old: twice the batch job's task
# timeout on Cloud Run (infra/terraform/run.tf).
ABANDONED_AFTER = timedelta(hours=2)


def day_finished(warehouse: Warehouse, day: date, entities: Iterable[str]) -> bool:
    """Whether every one of ``entities`` has a batch run for ``day`` that ended well
    (loaded, or unchanged from the loaded run)."""
    return set(entities) <= warehouse.finished_entities("batch", day)


def abandon_dead_runs(warehouse: Warehouse, job: str, now: datetime) -> None:
    """Mark ``abandoned`` the runs of ``job`` still ``running`` whose process is gone."""
    for run in warehouse.running_runs(job):
        if holder_alive(run.holder, run.started_at, ABANDONED_AFTER):
            continue
        run.status, run.finished_at = "abandoned", now
        run.error = f"its process ({run.holder or 'unknown'}) ended before the run did"
        warehouse.record_run(run)
        log.warning(f"{job}.abandoned", extra={"run_id": run.run_id, "entity": run.entity})


def raise_if_held(results: list[BatchResult]) -> list[BatchResult]:
    """``results``, unless a guard held an entity: then :class:`BatchHeld`."""
    held = [f"{r.entity} {r.day}: {r.reason}" for r in results if r.status == "held"]
    if held:
        raise BatchHeld(f"batch held: {'; '.join(held)}; rerun with --force to load it anyway")
    return results


@dataclass
class BatchResult:
    """What one entity's run did, for the summary and the tests."""

    entity: str
    day: date
    run_id: str
    status: str = "running"
    """Once run: loaded, unchanged or held; ``missing``: a backfill's day the lake lacks."""
    extracted: int = 0
    valid: int = 0
    quarantined: int = 0
    landed: int = 0
    loaded: int = 0
    parts: list[str] = field(default_factory=list)
    seconds: float = 0.0
    reason: str | None = None
    """Why the run was held (status ``held``)."""
    quality: list[QualityResult] = field(default_factory=list)
    """The results of the quality gates, as recorded."""


class BatchPipeline:
    """Composes client, lake and warehouse; knows no backend."""

    def __init__(
        self,
        lake: Lake,
        warehouse: Warehouse,
        client: FakeStoreClient | None = None,
        *,
        part_bytes: int = 32 << 20,
        workers: int = 2,
        progress: Progress | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        min_rows_fraction: float = 0.5,
        schema_policy: SchemaPolicy = "warn",
    ) -> None:
        self.lake, self.warehouse, self.client = lake, warehouse, client
        self.part_bytes = part_bytes
        self.workers = workers
        self.gates = Gates(
            lake, warehouse, min_rows_fraction=min_rows_fraction, schema_policy=schema_policy
        )
        self.progress = progress or _silent
        self.clock = clock

    def run(
        self,
        entities: Iterable[Entity],
        day: date,
        *,
        from_lake: bool = False,
        force: bool = False,
        run_id: str | None = None,
    ) -> list[BatchResult]:
        """Run every entity for ``day``; the first failure stops the run and is raised.
        A held entity (see the module) does not stop the others; ``force`` loads it."""
        self.lake.setup()
        self.warehouse.setup()
        abandon_dead_runs(self.warehouse, "batch", self.clock())
        run_id = run_id or new_run_id(self.clock())
        job = self._reload if from_lake else self._ingest
        return [
            self._tracked(job, entity, day, run_id, from_lake=from_lake, force=force)
            for entity in entities
        ]

    def _tracked(
        self,
        job: Callable[..., BatchResult],
        entity: Entity,
        day: date,
        run_id: str,
        *,
        from_lake: bool,
        force: bool,
    ) -> BatchResult:
        source = "lake" if from_lake else (self.client.base_url if self.client else "?")
        record = RunRecord(run_id, "batch", entity, day, self.clock(), source, holder=holder())
        self.warehouse.record_run(record)
        started = time.perf_counter()
        try:
            result = job(entity, day, run_id, record, force=force)
        except BaseException as exc:
            record.status, record.error = "failed", str(exc) or type(exc).__name__
            record.finished_at = self.clock()
            log.error(
                "batch.failed", extra={"entity": entity, "run_id": run_id, "error": record.error}
            )
            try:
                self.warehouse.record_run(record)
            except PlatformError as unrecorded:  # the cause is what the operator needs
                log.error("batch.unrecorded", extra={"run_id": run_id, "error": str(unrecorded)})
            raise
        result.seconds = time.perf_counter() - started
        record.status, record.finished_at = result.status, self.clock()
        record.landed, record.loaded = result.landed, result.loaded
        record.error = result.reason
        self.warehouse.record_run(record)
        log.info(
            "batch.done",
            extra={
                "entity": entity,
                "day": day,
                "status": result.status,
                "loaded": result.loaded,
                "seconds": result.seconds,
            },
        )
        return result

    def _ingest(
        self, entity: Entity, day: date, run_id: str, record: RunRecord, *, force: bool
    ) -> BatchResult:
        if self.client is None:
            raise ValueError("an API client is needed unless loading from the lake")
        clear_debris(self.lake, entity, day)
        extracted_at = self.clock()
        meta = LoadMeta(entity, day, run_id, extracted_at)
        result = BatchResult(entity, day, run_id)
        load = self.warehouse.begin_load(meta)
        landing = Landing(self.lake, load, meta, self.part_bytes)
        counts = ExtractCounts(entity)
        shapes: list[Shape] = []
        try:
            started = time.perf_counter()
            for batch in extract_jsonl(self.client, entity, counts, self.workers):
                landing.add(batch)
                shapes.append(batch.shape)
                self.progress(entity, counts.extracted)
            content = landing.finish()
            shape = merge(shapes)
            source = f"{self.client.base_url}/{entity}"
            manifests.land(self.lake, meta, source, landing, counts, content, shape.as_json())
            log.info(
                "batch.land",
                extra={
                    "entity": entity,
                    "extracted": counts.extracted,
                    "valid": counts.valid,
                    "quarantined": counts.rejected,
                    "parts": len(landing.parts),
                    "bytes": sum(p.size for p in landing.parts),
                    "seconds": time.perf_counter() - started,
                },
            )
            for tally in (result, record):
                tally.extracted, tally.valid = counts.extracted, counts.valid
                tally.quarantined = counts.rejected
            record.content_sha256 = content
            result.landed = sum(p.records for p in landing.parts)
            result.parts = [p.key for p in landing.parts]
            _reconcile(entity, counts, result.landed)
            self._load(load, meta, content, result, force=force, shape=shape)
        except BaseException:
            landing.abort()
            load.abort()
            raise
        return result

    def _load(
        self,
        load: PartitionLoad,
        meta: LoadMeta,
        content: str,
        result: BatchResult,
        *,
        force: bool,
        shape: Shape | None,
    ) -> None:
        """Swap the staged rows in, unless the partition already holds this content (then
        nothing is judged: nothing would change) or a quality gate holds the run (see
        :mod:`.gates`)."""
        started = time.perf_counter()
        if self._unchanged(meta.entity, meta.day, content):
            load.abort()
            result.status = "unchanged"
            result.loaded = 0
        else:
            verdict = self.gates.judge(
                meta, result.run_id, result.landed, shape, now=self.clock(), force=force
            )
            result.quality = verdict.results
            if verdict.held is not None:
                load.abort()
                result.status, result.reason, result.loaded = "held", verdict.held, 0
                log.warning("batch.held", extra={"entity": meta.entity, "reason": verdict.held})
            else:
                result.loaded = load.commit()
                result.status = "loaded"
        log.info(
            "batch.load",
            extra={
                "entity": meta.entity,
                "day": meta.day,
                "status": result.status,
                "rows": result.loaded,
                "seconds": time.perf_counter() - started,
            },
        )

    def _unchanged(self, entity: str, day: date, content: str) -> bool:
        holders = self.warehouse.partition_runs(entity, day)
        if len(holders) != 1:
            return False
        (loaded_run,) = holders
        try:
            previous = manifests.committed(self.lake, manifest_key(entity, day, loaded_run))
        except LakeError as exc:  # the loaded run's manifest is lost or damaged: reload
            log.warning("batch.manifest_unreadable", extra={"error": str(exc)})
            return False
        return bool(previous["content_sha256"] == content)

    def _reload(
        self, entity: Entity, day: date, run_id: str, record: RunRecord, *, force: bool
    ) -> BatchResult:
        keys = manifest_keys(self.lake, entity, day)
        if not keys:
            raise LakeError(f"no committed {entity} run in the lake for {day}: nothing to reload")
        # The run extracted last (run ids sort by the second only).
        committed = [manifests.committed(self.lake, key) for key in keys]
        manifest = max(committed, key=lambda m: (m["extracted_at"], m["run_id"]))
        manifests.verify(self.lake, manifest)
        meta = LoadMeta(entity, day, manifest["run_id"], manifest["extracted_at"])
        result = BatchResult(
            entity,
            day,
            run_id,
            extracted=manifest["extracted"],
            valid=manifest["records"],
            quarantined=manifest["quarantined"],
        )
        record.source = f"lake:{manifest_key(entity, day, meta.run_id)}"
        record.content_sha256 = manifest["content_sha256"]
        load = self.warehouse.begin_load(meta)
        try:
            for part in manifest["parts"]:
                load.add(manifests.lake_object(self.lake, part))
                result.landed += part["records"]
                self.progress(entity, result.landed, manifest["records"])
            rejects = manifest.get("quarantine")
            if rejects:
                load.add_rejects(manifests.lake_object(self.lake, rejects))
            result.parts = [p["key"] for p in manifest["parts"]]
            shape = Shape.from_json(manifest.get("schema"))
            self._load(load, meta, manifest["content_sha256"], result, force=force, shape=shape)
        except BaseException:
            load.abort()
            raise
        return result


def _reconcile(entity: str, counts: ExtractCounts, landed: int) -> None:
    if counts.extracted != counts.valid + counts.rejected:
        raise ReconciliationError(
            f"{entity}: extracted {counts.extracted} != valid {counts.valid} "
            f"+ quarantined {counts.rejected}"
        )
    if landed != counts.valid:
        raise ReconciliationError(f"{entity}: valid {counts.valid} != landed {landed}")
