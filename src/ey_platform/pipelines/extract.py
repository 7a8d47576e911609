"""Extract: stream an entity from the API and validate it at the edge, batch by batch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ey_platform.models import Entity
from ey_platform.source.client import FakeStoreClient
from ey_platform.validation import ValidatedBatch, gc_paused, validate_batch


@dataclass
class ExtractCounts:
    entity: Entity
    extracted: int = 0
    valid: int = 0
    rejected: int = 0


def extract(
    client: FakeStoreClient, entity: Entity, counts: ExtractCounts | None = None
) -> Iterator[ValidatedBatch]:
    """Yield validated batches of ``entity``; ``counts`` is updated as they pass.

    The cyclic collector stays paused until the generator ends: turning it back on
    between batches makes it sweep every live record, which cost more than parsing.
    """
    counts = counts or ExtractCounts(entity)
    with gc_paused():
        for batch in client.iter_entity(entity):
            checked = validate_batch(entity, batch)
            counts.extracted += len(batch)
            counts.valid += len(checked.valid)
            counts.rejected += len(checked.rejected)
            yield checked


def count_valid(client: FakeStoreClient, entity: Entity) -> ExtractCounts:
    """Fetch and validate ``entity`` without keeping it: the counts only."""
    counts = ExtractCounts(entity)
    for _ in extract(client, entity, counts):
        pass
    return counts
