"""The lake interface and its layout. Backends: :mod:`.local` (files), :mod:`.gcs`.

Layout under the lake root (bucket or folder)::

    raw/<entity>/ingestion_date=YYYY-MM-DD/<entity>-<run_id>-p00000.jsonl   records, as received
    raw/<entity>/ingestion_date=YYYY-MM-DD/<entity>-<run_id>.manifest.json  the run's commit mark
    quarantine/<entity>/ingestion_date=YYYY-MM-DD/<entity>-<run_id>.jsonl  rejects and reasons

A run writes its parts, then its manifest. Only a manifest makes a run's parts visible
to loads: parts without one are the leftovers of a crashed run (orphans), ignored by
loads and reported by the next run of the entity (:func:`orphan_parts`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol, TypeVar

import orjson

from ey_platform.errors import LakeIntegrityError

Keys = list[str]
E = TypeVar("E", bound=str)
# What a batch run finds in the lake is the batch's to report.
log = logging.getLogger("ey_platform.batch")


@dataclass(frozen=True, slots=True)
class LakeObject:
    """An object written to the lake: where it is and what it holds."""

    key: str
    uri: str
    records: int
    size: int
    sha256: str


class Tally:
    """What a writer has written so far: records, bytes and their sha256."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.records = 0
        self.size = 0

    def add(self, data: bytes, records: int) -> None:
        self.sha.update(data)
        self.records += records
        self.size += len(data)

    def lake_object(self, key: str, uri: str) -> LakeObject:
        return LakeObject(key, uri, self.records, self.size, self.sha.hexdigest())


class LakeWriter(Protocol):
    """Streams one object into the lake; nothing is visible until :meth:`commit`."""

    def write(self, data: bytes, records: int) -> None:
        """Append ``data`` holding ``records`` records (JSONL lines)."""

    def commit(self) -> LakeObject:
        """Publish the object atomically. Raises ``LakeError`` if the key exists."""

    def abort(self) -> None:
        """Drop what was written; safe to call after a failure or twice."""


class Lake(Protocol):
    """Write-once object storage for raw files."""

    def setup(self) -> None:
        """Create the root (folder or bucket) if it is missing and this identity may."""

    def create(self, key: str) -> LakeWriter:
        """Start writing the object ``key`` (relative to the lake root)."""

    def read(self, key: str) -> bytes:
        """The whole object. Raises ``LakeError`` if it does not exist."""

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""

    def uri(self, key: str) -> str:
        """Where a warehouse loader finds the object (a path, or ``gs://``)."""

    def sweep(self, prefix: str) -> Keys:
        """Remove what writers that died left under ``prefix`` (temporary files that were
        never published) and return their names. Published objects are never touched.
        Call it only while no writer of ``prefix`` is running."""


def partition(kind: str, entity: str, day: date) -> str:
    return f"{kind}/{entity}/ingestion_date={day.isoformat()}/"


def part_key(entity: str, day: date, run_id: str, part: int) -> str:
    return f"{partition('raw', entity, day)}{entity}-{run_id}-p{part:05d}.jsonl"


def manifest_key(entity: str, day: date, run_id: str) -> str:
    return f"{partition('raw', entity, day)}{entity}-{run_id}.manifest.json"


def quarantine_key(entity: str, day: date, run_id: str) -> str:
    return f"{partition('quarantine', entity, day)}{entity}-{run_id}.jsonl"


def put_bytes(lake: Lake, key: str, data: bytes, records: int) -> LakeObject:
    """Write a whole object once; nothing is left behind if it fails."""
    writer = lake.create(key)
    try:
        writer.write(data, records)
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


def put_json(lake: Lake, key: str, value: Any) -> LakeObject:
    """Write a small JSON document once."""
    return put_bytes(lake, key, orjson.dumps(value, option=orjson.OPT_INDENT_2), 1)


def read_manifest(lake: Lake, key: str) -> dict[str, Any]:
    """The manifest ``key``; :class:`LakeIntegrityError` naming it if it is not a JSON
    object."""
    try:
        manifest = orjson.loads(lake.read(key))
    except orjson.JSONDecodeError as exc:
        raise LakeIntegrityError(
            f"manifest {lake.uri(key)} is damaged: not valid JSON ({exc.msg} at byte {exc.pos})"
        ) from None
    if not isinstance(manifest, dict):
        raise LakeIntegrityError(f"manifest {lake.uri(key)} is damaged: not a JSON object")
    return manifest


def manifest_keys(lake: Lake, entity: str, day: date) -> list[str]:
    """The manifests of ``entity`` on ``day``, oldest run first (run ids sort by time)."""
    keys = lake.list(partition("raw", entity, day))
    return sorted(k for k in keys if k.endswith(".manifest.json"))


def committed_days(
    lake: Lake, entities: Sequence[E], start: date, end: date
) -> dict[date, list[E]]:
    """Each day from ``start`` to ``end`` (both included), in order, with those of
    ``entities`` of which the lake holds a committed run. One listing per day and entity:
    what a backfill costs follows its range, not the length of the lake's history."""
    days = (start + timedelta(days=n) for n in range((end - start).days + 1))
    return {day: [e for e in entities if manifest_keys(lake, e, day)] for day in days}


def manifests(lake: Lake, entity: str, day: date) -> list[dict[str, Any]]:
    """The committed runs of ``entity`` on ``day``, oldest first."""
    return [read_manifest(lake, k) for k in manifest_keys(lake, entity, day)]


def orphan_parts(lake: Lake, entity: str, day: date) -> list[str]:
    """Parts of ``entity`` on ``day`` whose run has no manifest: a run that died before
    committing. Loads never see them."""
    keys = lake.list(partition("raw", entity, day))
    committed = {k.removesuffix(".manifest.json") for k in keys if k.endswith(".manifest.json")}
    return [k for k in keys if k.endswith(".jsonl") and k.rsplit("-p", 1)[0] not in committed]


def clear_debris(lake: Lake, entity: str, day: date) -> None:
    """Remove the temporary files runs of ``entity`` that were killed left in the lake
    (call it holding the batch lock: no writer of them is alive), and report the parts of
    ``day`` that no manifest commits. Nothing committed is touched."""
    swept = lake.sweep(f"raw/{entity}/") + lake.sweep(f"quarantine/{entity}/")
    if swept:
        log.warning("batch.swept_temporaries", extra={"entity": entity, "files": len(swept)})
    orphans = orphan_parts(lake, entity, day)
    if orphans:
        runs = sorted({key.rsplit("/", 1)[-1].rsplit("-p", 1)[0] for key in orphans})
        log.warning(
            "batch.orphan_parts",
            extra={
                "entity": entity,
                "day": day,
                "parts": len(orphans),
                "runs": ",".join(runs),
                "meaning": "runs that died before their manifest; never loaded",
            },
        )
