"""Validation at the edge: split a batch of raw records into valid ones and rejects.

A reject keeps the original record and a reason that names each failing field, so it
can be quarantined and inspected; nothing is dropped silently.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from ey_platform.models import SCHEMAS, Entity, batch_adapter
from ey_platform.ops.quality import Shape
from ey_platform.source.jsonstream import array_to_jsonl


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that failed validation, as received, with the reason."""

    record: Any
    reason: str


def reject_lines(rejected: list[Rejected]) -> bytes:
    """Quarantine JSONL: one ``{"reason": ..., "record": ...}`` per reject."""
    return b"".join(
        orjson.dumps({"reason": r.reason, "record": r.record}, option=orjson.OPT_APPEND_NEWLINE)
        for r in rejected
    )


@dataclass(slots=True)
class ValidatedBatch:
    valid: list[Any] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around bulk parsing and validation.

    Millions of fresh dicts trigger collections that find nothing to free (the records
    hold no cycles) yet cost more than the parsing itself. Reference counting still
    frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@cache
def _adapter(entity: Entity) -> TypeAdapter[list[Any]]:
    return batch_adapter(entity)


def _describe(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err["loc"][1:]) or "record"
        parts.append(f"{where}: {err['msg']} (got {err.get('input')!r:.60})")
    return "; ".join(parts)


def validate_batch(entity: Entity, records: list[Any]) -> ValidatedBatch:
    """Validate ``records`` in one pass; the valid ones are returned as received."""
    try:
        _adapter(entity).validate_python(records)
    except ValidationError as exc:
        by_index: dict[int, list[dict[str, Any]]] = {}
        for err in exc.errors(include_url=False):
            by_index.setdefault(int(err["loc"][0]), []).append(dict(err))
        return ValidatedBatch(
            valid=[rec for i, rec in enumerate(records) if i not in by_index],
            rejected=[Rejected(records[i], _describe(errs)) for i, errs in by_index.items()],
        )
    return ValidatedBatch(valid=records)


@dataclass(slots=True)
class GatedBatch:
    """A batch validated from its JSON text: the valid records as JSONL, byte for byte as
    received where that can be proven exact, and the rejects."""

    jsonl: bytes
    valid: int
    rejected: list[Rejected] = field(default_factory=list)
    shape: Shape = field(default_factory=Shape)
    """The fields and JSON types of a sample of the valid records."""


@cache
def _required(entity: Entity) -> frozenset[str]:
    schema = SCHEMAS[entity]
    return frozenset(schema.__required_keys__)


def gate_json(entity: Entity, text: bytes) -> GatedBatch:
    """Validate a JSON array text of ``entity`` records in one pass of pydantic-core,
    without building Python dicts of the raw records.

    Raises ``ValueError`` if ``text`` is not valid JSON (so it can serve as the decoder
    that proves a cut of a streamed array).
    """
    try:
        count = len(_adapter(entity).validate_json(text))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise ValueError(errors[0]["msg"]) from None
        return _with_rejects(entity, text)
    jsonl = array_to_jsonl(text, count, _required(entity))
    if jsonl is None:
        jsonl = _encode_lines(orjson.loads(text))
    return GatedBatch(jsonl, count)


def _with_rejects(entity: Entity, text: bytes) -> GatedBatch:
    checked = validate_batch(entity, orjson.loads(text))
    return GatedBatch(_encode_lines(checked.valid), len(checked.valid), checked.rejected)


def _encode_lines(records: list[Any]) -> bytes:
    return b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records)
