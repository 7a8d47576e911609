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
leaves the warehouse untouched, so re-running a day changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ey_platform.errors import LakeError, ReconciliationError
from ey_platform.lake.base import (
    Lake,
    LakeObject,
    LakeWriter,
    manifest_key,
    manifests,
    part_key,
    put_json,
    quarantine_key,
)
from ey_platform.models import Entity
from ey_platform.pipelines.extract import ExtractCounts, extract_jsonl
from ey_platform.source.client import FakeStoreClient
from ey_platform.validation import GatedBatch, Rejected, reject_lines
from ey_platform.warehouse.base import LoadMeta, PartitionLoad, RunRecord, Warehouse

log = logging.getLogger("ey_platform.batch")

Progress = Callable[[str, int], None]


def day_finished(warehouse: Warehouse, day: date, entities: Iterable[str]) -> bool:
    """Whether every one of ``entities`` has a batch run for ``day`` that ended well
    (loaded, or unchanged from the loaded run)."""
    rows = warehouse.query(
        f"SELECT DISTINCT entity FROM {warehouse.raw}._pipeline_runs "
        "WHERE job = 'batch' AND ingestion_date = ? AND status IN ('loaded', 'unchanged')",
        [day],
    )
    return set(entities) <= {entity for (entity,) in rows}


def new_run_id(now: datetime) -> str:
    """Sortable by time, unique across machines: ``20261126T160000Z-3fa2c1``."""
    return f"{now:%Y%m%dT%H%M%S}Z-{secrets.token_hex(3)}"


@dataclass
class BatchResult:
    """What one entity's run did, for the summary and the tests."""

    entity: str
    day: date
    run_id: str
    status: str = "running"
    extracted: int = 0
    valid: int = 0
    quarantined: int = 0
    landed: int = 0
    loaded: int = 0
    parts: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Landing:
    """Writes valid lines into parts of about ``part_bytes`` and hands each finished part
    to the warehouse load; writes rejects to the quarantine file."""

    def __init__(self, lake: Lake, load: PartitionLoad, meta: LoadMeta, part_bytes: int) -> None:
        self.lake, self.load, self.meta, self.part_bytes = lake, load, meta, part_bytes
        self.parts: list[LakeObject] = []
        self.rejects: LakeObject | None = None
        self._part: LakeWriter | None = None
        self._part_size = 0
        self._quarantine: LakeWriter | None = None

    def add(self, batch: GatedBatch) -> None:
        if batch.valid:
            self._write_valid(batch.jsonl, batch.valid)
        if batch.rejected:
            self._write_rejects(batch.rejected)

    def _write_valid(self, data: bytes, records: int) -> None:
        if self._part is None:
            m = self.meta
            self._part = self.lake.create(part_key(m.entity, m.day, m.run_id, len(self.parts)))
        self._part.write(data, records)
        self._part_size += len(data)
        if self._part_size >= self.part_bytes:
            self._close_part()

    def _close_part(self) -> None:
        if self._part is not None:
            part = self._part.commit()
            self._part, self._part_size = None, 0
            self.parts.append(part)
            self.load.add(part)

    def _write_rejects(self, rejected: list[Rejected]) -> None:
        if self._quarantine is None:
            m = self.meta
            self._quarantine = self.lake.create(quarantine_key(m.entity, m.day, m.run_id))
        self._quarantine.write(reject_lines(rejected), len(rejected))

    def finish(self) -> str:
        """Commit the open part and the quarantine; return the content hash."""
        self._close_part()
        if self._quarantine is not None:
            self.rejects = self._quarantine.commit()
            self._quarantine = None
            self.load.add_rejects(self.rejects)
        return content_hash(self.parts, self.rejects)

    def abort(self) -> None:
        for writer in (self._part, self._quarantine):
            if writer is not None:
                writer.abort()


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
    ) -> None:
        self.lake, self.warehouse, self.client = lake, warehouse, client
        self.part_bytes = part_bytes
        self.workers = workers
        self.progress = progress or (lambda entity, records: None)
        self.clock = clock

    def run(
        self, entities: Iterable[Entity], day: date, *, from_lake: bool = False
    ) -> list[BatchResult]:
        """Run every entity for ``day``; the first failure stops the run and is raised."""
        self.lake.setup()
        self.warehouse.setup()
        run_id = new_run_id(self.clock())
        job = self._reload if from_lake else self._ingest
        return [self._tracked(job, entity, day, run_id, from_lake) for entity in entities]

    def _tracked(
        self,
        job: Callable[..., BatchResult],
        entity: Entity,
        day: date,
        run_id: str,
        from_lake: bool,
    ) -> BatchResult:
        source = "lake" if from_lake else (self.client.base_url if self.client else "?")
        record = RunRecord(run_id, "batch", entity, day, self.clock(), source)
        self.warehouse.record_run(record)
        started = time.perf_counter()
        try:
            result = job(entity, day, run_id, record)
        except BaseException as exc:
            record.status, record.error = "failed", str(exc) or type(exc).__name__
            record.finished_at = self.clock()
            self.warehouse.record_run(record)
            log.error(
                "batch.failed", extra={"entity": entity, "run_id": run_id, "error": record.error}
            )
            raise
        result.seconds = time.perf_counter() - started
        record.status, record.finished_at = result.status, self.clock()
        record.landed, record.loaded = result.landed, result.loaded
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

    def _ingest(self, entity: Entity, day: date, run_id: str, record: RunRecord) -> BatchResult:
        if self.client is None:
            raise ValueError("an API client is needed unless loading from the lake")
        extracted_at = self.clock()
        meta = LoadMeta(entity, day, run_id, extracted_at)
        result = BatchResult(entity, day, run_id)
        load = self.warehouse.begin_load(meta)
        landing = _Landing(self.lake, load, meta, self.part_bytes)
        counts = ExtractCounts(entity)
        try:
            started = time.perf_counter()
            for batch in extract_jsonl(self.client, entity, counts, self.workers):
                landing.add(batch)
                self.progress(entity, counts.extracted)
            content = landing.finish()
            self._land_manifest(meta, landing, counts, content)
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
            result.extracted, result.valid, result.quarantined = (
                counts.extracted,
                counts.valid,
                counts.rejected,
            )
            record.extracted, record.valid, record.quarantined = (
                counts.extracted,
                counts.valid,
                counts.rejected,
            )
            record.content_sha256 = content
            result.landed = sum(p.records for p in landing.parts)
            result.parts = [p.key for p in landing.parts]
            _reconcile(entity, counts, result.landed)
            self._load(load, meta, content, result)
        except BaseException:
            landing.abort()
            load.abort()
            raise
        return result

    def _land_manifest(
        self, meta: LoadMeta, landing: _Landing, counts: ExtractCounts, content: str
    ) -> None:
        put_json(
            self.lake,
            manifest_key(meta.entity, meta.day, meta.run_id),
            {
                "run_id": meta.run_id,
                "entity": meta.entity,
                "ingestion_date": meta.day.isoformat(),
                "extracted_at": meta.extracted_at.isoformat(),
                "source_url": f"{self.client.base_url if self.client else ''}/{meta.entity}",
                "records": counts.valid,
                "extracted": counts.extracted,
                "quarantined": counts.rejected,
                "content_sha256": content,
                "bytes": sum(p.size for p in landing.parts),
                "parts": [_describe(p) for p in landing.parts],
                "quarantine": _describe(landing.rejects) if landing.rejects else None,
            },
        )

    def _load(self, load: PartitionLoad, meta: LoadMeta, content: str, result: BatchResult) -> None:
        """Swap the staged rows in, unless the partition already holds this content."""
        started = time.perf_counter()
        if self._unchanged(meta.entity, meta.day, content):
            load.abort()
            result.status = "unchanged"
            result.loaded = 0
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
        (holder,) = holders
        previous = {m["run_id"]: m for m in manifests(self.lake, entity, day)}.get(holder)
        return previous is not None and previous["content_sha256"] == content

    def _reload(self, entity: Entity, day: date, run_id: str, record: RunRecord) -> BatchResult:
        committed = manifests(self.lake, entity, day)
        if not committed:
            raise LakeError(f"no committed {entity} run in the lake for {day}: nothing to reload")
        manifest = committed[-1]
        meta = LoadMeta(
            entity, day, manifest["run_id"], datetime.fromisoformat(manifest["extracted_at"])
        )
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
                load.add(self._object(part))
            if manifest["quarantine"]:
                load.add_rejects(self._object(manifest["quarantine"]))
            result.landed = sum(p["records"] for p in manifest["parts"])
            result.parts = [p["key"] for p in manifest["parts"]]
            self._load(load, meta, manifest["content_sha256"], result)
        except BaseException:
            load.abort()
            raise
        return result

    def _object(self, described: dict[str, Any]) -> LakeObject:
        return LakeObject(
            described["key"],
            self.lake.uri(described["key"]),
            described["records"],
            described["bytes"],
            described["sha256"],
        )


def content_hash(parts: list[LakeObject], rejects: LakeObject | None) -> str:
    """What a run landed, in one hash: the same records give the same hash."""
    digests = [p.sha256 for p in parts] + ["rejects:" + (rejects.sha256 if rejects else "")]
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def _describe(obj: LakeObject) -> dict[str, Any]:
    return {"key": obj.key, "records": obj.records, "bytes": obj.size, "sha256": obj.sha256}


def _reconcile(entity: str, counts: ExtractCounts, landed: int) -> None:
    if counts.extracted != counts.valid + counts.rejected:
        raise ReconciliationError(
            f"{entity}: extracted {counts.extracted} != valid {counts.valid} "
            f"+ quarantined {counts.rejected}"
        )
    if landed != counts.valid:
        raise ReconciliationError(f"{entity}: valid {counts.valid} != landed {landed}")
