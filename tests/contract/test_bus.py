"""The bus contract: every backend behaves like Pub/Sub where the pipelines rely on it.
Parametrized over backends (tests/contract/conftest.py): the embedded bus always, Pub/Sub
on its emulator when it runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ey_platform.backends import make_bus as make_backend_bus
from ey_platform.bus.base import (
    Bus,
    Message,
    SupportsInspection,
    SupportsSetup,
    SupportsStats,
    bus_stats,
    setup_bus,
)
from ey_platform.bus.pubsub import PubSubBus
from ey_platform.settings import Settings

BusFactory = Callable[..., Bus]


@pytest.fixture
def deadline(settings: Settings) -> float:
    """The shortest ack deadline the backend has: Pub/Sub's is 10 s."""
    return 0.3 if settings.profile == "local" else 10.0


@pytest.fixture
def make_bus(settings: Settings) -> Iterator[BusFactory]:
    made: list[Bus] = []

    def factory(**overrides: Any) -> Bus:
        bus = make_backend_bus(
            settings.model_copy(update={"bus": settings.bus.model_copy(update=overrides)})
        )
        if isinstance(bus, PubSubBus):
            bus.pull_timeout = 1.0  # how long an empty pull waits on the emulator
        setup_bus(bus)
        made.append(bus)
        return bus

    yield factory
    for bus in made:
        bus.close()


def _backlog_is_empty(bus: Bus) -> bool:
    stats = bus_stats(bus)
    if stats is not None and stats.backlog is not None:
        return stats.backlog == 0
    return bus.pull(10) == []  # Pub/Sub: nothing deliverable (leases here are expired)


def _msgs(*payloads: str, key: str = "") -> list[Message]:
    return [Message(p.encode(), {"n": p}, key) for p in payloads]


def test_publish_pull_ack(make_bus: BusFactory) -> None:
    bus = make_bus()
    ids = bus.publish(_msgs("a", "b", "c", key="k"))
    assert len(set(ids)) == 3
    got = bus.pull(10)
    assert [m.data for m in got] == [b"a", b"b", b"c"]  # in order: one ordering key
    assert [m.message_id for m in got] == ids
    assert got[0].attributes == {"n": "a"} and got[0].delivery_attempt == 1
    assert got[0].ordering_key == "k"
    assert bus.pull(10) == []  # leased
    assert bus.ack([m.ack_id for m in got]) == 3
    assert _backlog_is_empty(bus)


def test_unacked_messages_are_redelivered_after_the_deadline(
    make_bus: BusFactory, deadline: float
) -> None:
    bus = make_bus(ack_deadline=deadline)
    bus.publish(_msgs("a"))
    assert [m.data for m in bus.pull(10)] == [b"a"]
    assert bus.pull(10) == []  # leased
    time.sleep(deadline + 0.2)
    second = bus.pull(10)
    assert [m.data for m in second] == [b"a"]
    assert second[0].delivery_attempt == 2
    assert bus.ack([second[0].ack_id]) == 1
    assert _backlog_is_empty(bus)


def test_a_stale_ack_does_not_count(make_bus: BusFactory) -> None:
    # Pub/Sub refuses stale acks only with exactly-once delivery, which its emulator lacks.
    bus = make_bus(ack_deadline=0.3)
    if isinstance(bus, PubSubBus):
        pytest.skip("the Pub/Sub emulator has no exactly-once delivery")
    bus.publish(_msgs("a"))
    first = bus.pull(10)
    time.sleep(0.4)
    second = bus.pull(10)
    assert bus.ack([first[0].ack_id]) == 0
    assert bus.stats().backlog == 1
    assert bus.ack([second[0].ack_id]) == 1


def test_nack_redelivers_at_once(make_bus: BusFactory) -> None:
    bus = make_bus()
    bus.publish(_msgs("a"))
    bus.nack([m.ack_id for m in bus.pull(1)])
    assert [m.delivery_attempt for m in bus.pull(1)] == [2]


def test_a_key_is_held_back_while_an_earlier_message_is_leased(make_bus: BusFactory) -> None:
    bus = make_bus()
    bus.publish(_msgs("k1-first", "k1-second", key="1"))
    first = bus.pull(1)
    assert [m.data for m in first] == [b"k1-first"]
    # Pub/Sub orders within a key only, so the unkeyed message comes after the first pull
    bus.publish(_msgs("free"))
    assert [m.data for m in bus.pull(10)] == [b"free"]  # k1-second waits for k1-first
    bus.ack([first[0].ack_id])
    assert [m.data for m in bus.pull(10)] == [b"k1-second"]


def test_one_pull_delivers_a_key_in_order(make_bus: BusFactory) -> None:
    bus = make_bus()
    bus.publish(_msgs(*[f"m{i}" for i in range(50)], key="7"))
    assert [m.data for m in bus.pull(100)] == [f"m{i}".encode() for i in range(50)]


def test_dead_letter_after_max_attempts(make_bus: BusFactory) -> None:
    bus = make_bus(max_delivery_attempts=5)  # Pub/Sub's least
    bus.publish(_msgs("poison", "fine"))
    attempts = 0
    for _ in range(8):
        got = bus.pull(10)
        if not got:
            break
        attempts = max(attempts, *(m.delivery_attempt for m in got if m.data == b"poison"))
        bus.ack([m.ack_id for m in got if m.data == b"fine"])
        bus.nack([m.ack_id for m in got if m.data == b"poison"])
    assert attempts == 5
    assert _backlog_is_empty(bus)
    if isinstance(bus, PubSubBus):
        # Known gap: the emulator stops delivering, as Pub/Sub does, but forwards nothing
        # to the dead-letter topic. (Invalid messages, the common case, are forwarded by
        # the consumer itself: see test_dead_letter_with_a_reason.)
        pytest.xfail("the Pub/Sub emulator does not forward to the dead-letter topic")
    assert [m.data for m in _eventually(bus.dead_letters)] == [b"poison"]


def _eventually(look: Callable[[], list[Any]], seconds: float = 10.0) -> list[Any]:
    """What ``look`` finds once it finds anything (Pub/Sub forwards dead letters
    asynchronously), or [] after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (found := look()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def test_dead_letter_with_a_reason(make_bus: BusFactory) -> None:
    bus = make_bus()
    bus.publish(_msgs("bad", "good"))
    # without ordering keys Pub/Sub promises no order: find each by its content
    bad, good = sorted(bus.pull(10), key=lambda m: m.data)
    bus.dead_letter(bad, "cart_id: Field required")
    bus.ack([good.ack_id])
    (dead,) = _eventually(bus.dead_letters)
    assert dead.data == b"bad"
    assert dead.attributes["dead_letter_reason"] == "cart_id: Field required"
    assert dead.attributes["delivery_attempts"] == "1"
    # the dead letter names the message it stands for, whatever id the backend gives it
    assert dead.attributes["original_message_id"] == bad.message_id


def test_published_messages_survive_a_new_connection(make_bus: BusFactory) -> None:
    make_bus().publish(_msgs("kept"))
    assert [m.data for m in make_bus().pull(10)] == [b"kept"]


# -- the optional abilities: each backend claims those it has, and only those ----------


def test_setup_is_claimed_and_creates_only_what_is_missing(make_bus: BusFactory) -> None:
    bus = make_bus()
    assert isinstance(bus, SupportsSetup)
    bus.publish(_msgs("kept"))
    setup_bus(bus)  # again, on a bus in use
    assert [m.data for m in bus.pull(10)] == [b"kept"]


def test_stats_are_claimed_only_where_they_are_counted(make_bus: BusFactory) -> None:
    bus = make_bus()
    if not isinstance(bus, SupportsStats):
        assert bus_stats(bus) is None
        return
    bus.publish(_msgs("a", "b", key="k"))
    (first,) = bus.pull(1)
    stats = bus_stats(bus)
    assert stats is not None
    assert (stats.backlog, stats.leased, stats.dead_letters) == (2, 1, 0)
    assert stats.oldest_unacked_seconds is not None and stats.oldest_unacked_seconds >= 0
    assert stats.next_lease_due_seconds is not None and stats.next_lease_due_seconds > 0
    bus.dead_letter(first, "bad")
    stats = bus.stats()
    assert (stats.backlog, stats.leased, stats.dead_letters) == (1, 0, 1)


def test_inspection_is_claimed_and_reads_dead_letters_without_taking_them(
    make_bus: BusFactory,
) -> None:
    bus = make_bus()
    assert isinstance(bus, SupportsInspection)
    assert bus.dead_letters(10) == []
    bus.publish(_msgs("bad"))
    (bad,) = bus.pull(10)
    bus.dead_letter(bad, "unreadable")
    assert [m.data for m in _eventually(lambda: bus.dead_letters(10))] == [b"bad"]
    assert [m.data for m in _eventually(lambda: bus.dead_letters(10))] == [b"bad"]  # still there
