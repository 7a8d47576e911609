"""The poller's durable memory: what it last published for every cart, and its polls.

The state of a cart changes only after the bus has confirmed the publish of its
event, so a crash between the two publishes the event again (with the same event id)
and never loses it. One backend today, a SQLite file beside the bus
(:mod:`ey_platform.state.sqlite`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ey_platform.warehouse.base import CartState

__all__ = ["CartState", "Known", "PollResult", "PollerState"]


@dataclass(frozen=True, slots=True)
class Known:
    content_hash: str | None
    version: int


@dataclass
class PollResult:
    """One poll: what it fetched and published, and how it ended. The poller returns it
    and records it here (all but ``unchanged`` and ``seconds``) for ``stream status``."""

    poll_id: str
    started_at: float
    status: str = "running"
    finished_at: float | None = None
    fetched: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    quarantined: int = 0
    error: str | None = None
    seconds: float = 0.0

    @property
    def published(self) -> int:
        return self.created + self.updated + self.deleted


class PollerState(Protocol):
    def load(self) -> dict[int, Known]:
        """Every cart the poller has published, with its last content hash and version."""
        ...

    def save(self, changes: Iterable[CartState]) -> None:
        """Record (cart id, content hash or None if deleted, version), durably."""
        ...

    def record_poll(self, poll: PollResult) -> None:
        """Record a poll as it starts and as it ends, for ``stream status``."""
        ...

    def last_poll(self) -> PollResult | None: ...

    def close(self) -> None: ...
