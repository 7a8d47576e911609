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

from pydantic import TypeAdapter, ValidationError

from ey_platform.models import Entity, batch_adapter


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that failed validation, as received, with the reason."""

    record: Any
    reason: str


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
