"""The bus interface, with Pub/Sub's semantics. Backends: :mod:`.sqlite` (embedded),
:mod:`.pubsub`.

- :meth:`Bus.publish` returns once the messages are durable.
- A pulled message is leased for the subscription's ack deadline; if it is not acked in
  time it is delivered again (at least once). An ack counts only for the delivery it
  names: a consumer that lost its lease cannot ack the redelivered copy.
- Messages with the same ordering key are delivered in publish order; a key is held
  back while an earlier message of it is leased to someone.
- After ``max_delivery_attempts`` deliveries a message goes to the dead-letter topic;
  a consumer can also send one there at once with :meth:`Bus.dead_letter`.

:class:`Bus` is what the poller and the consumer need. What only some backends can do
are separate abilities, checked with ``isinstance``: :class:`SupportsSetup`,
:class:`SupportsStats`, :class:`SupportsInspection`. Callers that take any bus use
:func:`setup_bus` and :func:`bus_stats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol, runtime_checkable


class Message(NamedTuple):
    """What a publisher sends. A tuple, not a dataclass: a poll builds one per event,
    and a tuple is the cheapest record to build."""

    data: bytes
    attributes: dict[str, str] = {}  # noqa: RUF012 - never mutated
    ordering_key: str = ""


class Received(NamedTuple):
    """A delivered message, with what the bus knows of it."""

    ack_id: str
    message_id: str
    data: bytes
    attributes: dict[str, str]
    ordering_key: str
    publish_time: datetime
    delivery_attempt: int


@dataclass(frozen=True, slots=True)
class BusStats:
    """The state of a subscription, for ``stream status``. A backend with
    :class:`SupportsStats` counts ``backlog``, ``leased`` and ``dead_letters``.
    ``oldest_unacked_seconds`` is None when nothing is unacked. ``next_lease_due_seconds``:
    how soon the first leased message is due again if it is not acked, so a drain can
    wait for the messages of a consumer that died (None when nothing is leased)."""

    backlog: int | None
    leased: int | None
    oldest_unacked_seconds: float | None
    dead_letters: int | None
    next_lease_due_seconds: float | None = None


class Bus(Protocol):
    """One topic and its subscription, plus the dead-letter topic."""

    def publish(self, messages: Sequence[Message]) -> list[str]:
        """Publish, in order; returns the message ids once every message is durable."""

    def pull(self, max_messages: int) -> list[Received]:
        """Lease up to ``max_messages`` deliverable messages (none if there are none)."""

    def ack(self, ack_ids: Sequence[str]) -> int:
        """Acknowledge deliveries; returns how many were still current."""

    def nack(self, ack_ids: Sequence[str]) -> None:
        """Give deliveries back for immediate redelivery."""

    def dead_letter(self, received: Received, reason: str) -> None:
        """Send a delivery to the dead-letter topic with ``reason``, and ack it."""

    def close(self) -> None:
        """Release connections."""


@runtime_checkable
class SupportsSetup(Protocol):
    """A bus that can create its topics and subscriptions."""

    def setup(self) -> None:
        """Create the topic, the subscription and the dead-letter topic if missing."""


@runtime_checkable
class SupportsStats(Protocol):
    """A bus that counts what its subscription holds."""

    def stats(self) -> BusStats:
        """Backlog, leases, age of the oldest unacked message, dead letters."""


@runtime_checkable
class SupportsInspection(Protocol):
    """A bus whose dead letters can be read without consuming them."""

    def dead_letters(self, limit: int = 100) -> list[Received]:
        """Look at up to ``limit`` dead letters without taking them off the topic."""


def setup_bus(bus: Bus) -> None:
    """Create what ``bus`` needs, if it is a bus that creates anything."""
    if isinstance(bus, SupportsSetup):
        bus.setup()


def bus_stats(bus: Bus) -> BusStats | None:
    """The figures of ``bus``, or None when it cannot count them."""
    return bus.stats() if isinstance(bus, SupportsStats) else None
