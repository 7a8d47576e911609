"""The lake interface and its layout. Backends: :mod:`.local` (files), :mod:`.gcs`.

Layout under the lake root (bucket or folder)::

    raw/<entity>/ingestion_date=YYYY-MM-DD/<entity>-<run_id>-p00000.jsonl   records, as received
    raw/<entity>/ingestion_date=YYYY-MM-DD/<entity>-<run_id>.manifest.json  the run's commit mark
    quarantine/<entity>/ingestion_date=YYYY-MM-DD/<entity>-<run_id>.jsonl  rejects and reasons

A run writes its parts, then its manifest. Only a manifest makes a run's parts visible
to loads: parts without one are the leftovers of a crashed run and are ignored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import orjson


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


def manifests(lake: Lake, entity: str, day: date) -> list[dict[str, Any]]:
    """The committed runs of ``entity`` on ``day``, oldest first."""
    keys = [k for k in lake.list(partition("raw", entity, day)) if k.endswith(".manifest.json")]
    return sorted((orjson.loads(lake.read(k)) for k in keys), key=lambda m: m["run_id"])
