"""The manifest that commits a batch run to the lake: what it holds, how a reload
checks the lake's files against it, and the run's content hash."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any, NotRequired

from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict

from ey_platform.errors import LakeIntegrityError
from ey_platform.lake.base import Lake, LakeObject, manifest_key, put_json, read_manifest

if TYPE_CHECKING:
    from ey_platform.pipelines.extract import ExtractCounts
    from ey_platform.pipelines.landing import Landing
    from ey_platform.warehouse.base import LoadMeta

FORMAT = 2
"""Format 2 commits the records' content hash, which a reload checks."""


def land(
    lake: Lake,
    meta: LoadMeta,
    source_url: str,
    landing: Landing,
    counts: ExtractCounts,
    content: str,
    schema: dict[str, Any],
) -> None:
    """Write the manifest that commits a landed run to the lake."""
    put_json(
        lake,
        manifest_key(meta.entity, meta.day, meta.run_id),
        {
            "run_id": meta.run_id,
            "entity": meta.entity,
            "ingestion_date": meta.day.isoformat(),
            "extracted_at": meta.extracted_at.isoformat(),
            "source_url": source_url,
            "format": FORMAT,
            "records": counts.valid,
            "extracted": counts.extracted,
            "quarantined": counts.rejected,
            "content_sha256": content,
            "bytes": sum(p.size for p in landing.parts),
            "parts": [describe(p) for p in landing.parts],
            "quarantine": describe(landing.rejects) if landing.rejects else None,
            "schema": schema,
        },
    )


def content_hash(records_sha256: str, rejects: LakeObject | None) -> str:
    """What a run landed, in one hash: the sha256 of its valid lines in order, and its
    rejects. The same records give the same hash however they were split into parts."""
    digests = [records_sha256, "rejects:" + (rejects.sha256 if rejects else "")]
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


class Described(TypedDict):
    key: str
    records: int
    bytes: int
    sha256: str


class Manifest(TypedDict):
    """What a reload needs of a manifest (it holds more)."""

    run_id: str
    extracted_at: datetime
    records: int
    extracted: int
    quarantined: int
    content_sha256: str
    parts: list[Described]
    quarantine: NotRequired[Described | None]
    format: NotRequired[int]
    schema: NotRequired[dict[str, Any]]
    """The shape of the records: fields and JSON types of a sample (``ops.quality``)."""


_MANIFESTS = TypeAdapter(Manifest)


def committed(lake: Lake, key: str) -> Manifest:
    """The manifest ``key``, checked: :class:`LakeIntegrityError` names it if it is not
    one this version can reload."""
    manifest = read_manifest(lake, key)
    try:
        return _MANIFESTS.validate_python(manifest)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "manifest"
        raise LakeIntegrityError(
            f"manifest {lake.uri(key)} is damaged: {where}: {err['msg']}; nothing was loaded "
            "(a plain `ey-platform batch` extracts the day again)"
        ) from None


def describe(obj: LakeObject) -> dict[str, Any]:
    return {"key": obj.key, "records": obj.records, "bytes": obj.size, "sha256": obj.sha256}


def verify(lake: Lake, manifest: Manifest) -> None:
    """Check every part and the quarantine file against the manifest (bytes, sha256,
    records) and, for format 2, the records' content hash; raise
    :class:`LakeIntegrityError` naming the first object that differs."""
    records = hashlib.sha256()
    for part in manifest["parts"]:
        records.update(_checked(lake, part))
    rejects = manifest.get("quarantine")
    if rejects:
        _checked(lake, rejects)
    if manifest.get("format", 1) < 2:
        return
    described = LakeObject("", "", 0, 0, rejects["sha256"]) if rejects else None
    if content_hash(records.hexdigest(), described) != manifest["content_sha256"]:
        raise LakeIntegrityError(
            f"run {manifest['run_id']}: its parts do not hold the records its manifest "
            "commits (content hash differs); nothing was loaded"
        )


def _checked(lake: Lake, described: Described) -> bytes:
    key = described["key"]
    data = lake.read(key)
    found = (len(data), hashlib.sha256(data).hexdigest(), data.count(b"\n"))
    wanted = (described["bytes"], described["sha256"], described["records"])
    for what, has, should in zip(("bytes", "sha256", "records"), found, wanted, strict=True):
        if has != should:
            raise LakeIntegrityError(
                f"{lake.uri(key)} does not match its manifest: {what} {has} instead "
                f"of {should} (altered or truncated); nothing was loaded"
            )
    return data


def lake_object(lake: Lake, described: Described) -> LakeObject:
    return LakeObject(
        described["key"],
        lake.uri(described["key"]),
        described["records"],
        described["bytes"],
        described["sha256"],
    )
