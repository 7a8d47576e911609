"""Landing a batch run in the lake: valid lines into write-once parts of about
``part_bytes``, each handed to the warehouse load once finished; rejects into the
quarantine file."""

from __future__ import annotations

import hashlib

from ey_platform.lake.base import Lake, LakeObject, LakeWriter, part_key, quarantine_key
from ey_platform.pipelines.manifest import content_hash
from ey_platform.validation import GatedBatch, Rejected, reject_lines
from ey_platform.warehouse.base import LoadMeta, PartitionLoad


class Landing:
    """Writes valid lines into parts of about ``part_bytes`` and hands each finished part
    to the warehouse load; writes rejects to the quarantine file."""

    def __init__(self, lake: Lake, load: PartitionLoad, meta: LoadMeta, part_bytes: int) -> None:
        self.lake, self.load, self.meta, self.part_bytes = lake, load, meta, part_bytes
        self.parts: list[LakeObject] = []
        self.rejects: LakeObject | None = None
        self._part: LakeWriter | None = None
        self._part_size = 0
        self._quarantine: LakeWriter | None = None
        self._records = hashlib.sha256()  # every valid line, in order, across parts

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
        self._records.update(data)
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
        return content_hash(self._records.hexdigest(), self.rejects)

    def abort(self) -> None:
        for writer in (self._part, self._quarantine):
            if writer is not None:
                writer.abort()
