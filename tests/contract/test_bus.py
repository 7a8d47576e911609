"""The bus contract: every backend behaves like Pub/Sub where the pipelines rely on it.
Parametrized over backends; the embedded one always runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ey_platform.bus.base import Bus, Message
from ey_platform.bus.sqlite import SQLiteBus

BusFactory = Callable[..., Bus]


def _sqlite(tmp_path: Path) -> BusFactory:
    def make(**kw: object) -> Bus:
        return SQLiteBus(tmp_path / "bus.sqlite3", **kw)  # type: ignore[arg-type]

    return make


@pytest.fixture(params=["embedded"])
def make_bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BusFactory]:
    made: list[Bus] = []

    def factory(**kw: object) -> Bus:
        bus = {"embedded": _sqlite(tmp_path)}[request.param](**kw)
        bus.setup()
        made.append(bus)
        return bus

    yield factory
    for bus in made:
        bus.close()


def _msgs(*payloads: str, key: str = "") -> list[Message]:
    return [Message(p.encode(), {"n": p}, key) for p in payloads]


def test_publish_pull_ack(make_bus: BusFactory) -> None:
    bus = make_bus()
    ids = bus.publish(_msgs("a", "b", "c"))
    assert len(set(ids)) == 3
    got = bus.pull(10)
    assert [m.data for m in got] == [b"a", b"b", b"c"]
    assert [m.message_id for m in got] == ids
    assert got[0].attributes == {"n": "a"} and got[0].delivery_attempt == 1
    assert bus.pull(10) == []  # leased
    assert bus.ack([m.ack_id for m in got]) == 3
    assert bus.stats().backlog == 0


def test_unacked_messages_are_redelivered_after_the_deadline(make_bus: BusFactory) -> None:
    bus = make_bus(ack_deadline=0.3)
    bus.publish(_msgs("a"))
    first = bus.pull(10)
    time.sleep(0.4)
    second = bus.pull(10)
    assert [m.data for m in second] == [b"a"]
    assert second[0].delivery_attempt == 2
    assert bus.ack([first[0].ack_id]) == 0  # a stale ack does not count
    assert bus.stats().backlog == 1
    assert bus.ack([second[0].ack_id]) == 1


def test_nack_redelivers_at_once(make_bus: BusFactory) -> None:
    bus = make_bus()
    bus.publish(_msgs("a"))
    bus.nack([m.ack_id for m in bus.pull(1)])
    assert [m.delivery_attempt for m in bus.pull(1)] == [2]


def test_a_key_is_held_back_while_an_earlier_message_is_leased(make_bus: BusFactory) -> None:
    bus = make_bus()
    bus.publish(_msgs("k1-first", key="1") + _msgs("free") + _msgs("k1-second", key="1"))
    first = bus.pull(1)
    assert [m.data for m in first] == [b"k1-first"]
    assert [m.data for m in bus.pull(10)] == [b"free"]  # k1-second waits for k1-first
    bus.ack([first[0].ack_id])
    assert [m.data for m in bus.pull(10)] == [b"k1-second"]


def test_one_pull_delivers_a_key_in_order(make_bus: BusFactory) -> None:
    bus = make_bus()
    bus.publish(_msgs(*[f"m{i}" for i in range(50)], key="7"))
    assert [m.data for m in bus.pull(100)] == [f"m{i}".encode() for i in range(50)]


def test_dead_letter_after_max_attempts(make_bus: BusFactory) -> None:
    bus = make_bus(ack_deadline=0.1, max_delivery_attempts=2)
    bus.publish(_msgs("poison", "fine"))
    for _ in range(2):
        got = bus.pull(10)
        bus.ack([m.ack_id for m in got if m.data == b"fine"])
        time.sleep(0.15)
    assert bus.pull(10) == []
    stats = bus.stats()
    assert (stats.backlog, stats.dead_letters) == (0, 1)


def test_dead_letter_with_a_reason(make_bus: BusFactory) -> None:
    bus = make_bus()
    bus.publish(_msgs("bad", "good"))
    bad, good = bus.pull(10)
    bus.dead_letter(bad, "cart_id: Field required")
    bus.ack([good.ack_id])
    assert bus.stats().dead_letters == 1
    (dead,) = bus.dead_letters()  # type: ignore[attr-defined]
    assert dead.data == b"bad"
    assert dead.attributes["dead_letter_reason"] == "cart_id: Field required"


def test_published_messages_survive_a_new_connection(make_bus: BusFactory) -> None:
    make_bus().publish(_msgs("kept"))
    assert [m.data for m in make_bus().pull(10)] == [b"kept"]
