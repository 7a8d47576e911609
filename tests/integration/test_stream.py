"""Streaming against the bundled server: real processes, real SIGKILLs, a real DuckDB
file and the embedded bus."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from ey_platform.bus.base import Message
from ey_platform.bus.sqlite import SQLiteBus
from ey_platform.errors import BusError, WarehouseError
from ey_platform.lake.local import LocalLake
from ey_platform.pipelines.consumer import CartConsumer, ConsumeResult
from ey_platform.pipelines.poller import CartPoller
from ey_platform.source.client import FakeStoreClient
from ey_platform.source.data import Catalog
from ey_platform.source.faults import FaultPlan
from ey_platform.source.server import ServerState, create_app, serve_in_thread
from ey_platform.state.sqlite import SQLitePollerState
from ey_platform.warehouse.base import EventRows, EventSink
from ey_platform.warehouse.duckdb import DuckDBWarehouse


class Stack:
    """The streaming parts over one data folder, as the CLI would build them."""

    def __init__(self, data: Path, url: str, ack_deadline: float = 60.0) -> None:
        self.data, self.url = data, url
        self.bus = SQLiteBus(data / "bus.sqlite3", ack_deadline=ack_deadline)
        self.bus.setup()
        self.warehouse = DuckDBWarehouse(data / "warehouse.duckdb")
        self.warehouse.setup()
        self.client = FakeStoreClient(url)
        self.states: list[SQLitePollerState] = []

    def poller(self, reconcile_every: float = 3600.0) -> CartPoller:
        state = SQLitePollerState(self.data / "stream" / "poller.sqlite3")  # a fresh process's view
        self.states.append(state)
        return CartPoller(
            self.client,
            self.bus,
            state,
            LocalLake(self.data / "lake"),
            landed=self.warehouse,
            reconcile_every=reconcile_every,
        )

    def consume(self) -> ConsumeResult:
        return CartConsumer(self.bus, self.warehouse.event_sink(), 500).run(drain=True)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.warehouse.query(sql)

    def close(self) -> None:
        self.client.close()
        self.bus.close()
        for state in self.states:
            state.close()


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    app = create_app(Catalog(n_carts=50))
    with serve_in_thread(app) as url:
        yield url, app.state.fakestore


@pytest.fixture
def stack(tmp_path: Path, server: tuple[str, ServerState]) -> Iterator[Stack]:
    s = Stack(tmp_path / "data", server[0])
    yield s
    s.close()


def _cli(data: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ey_platform", "stream", *args, "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def _wait_for(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_restart_of_the_poller_publishes_nothing_when_nothing_changed(stack: Stack) -> None:
    first = stack.poller().poll_once()
    assert (first.created, first.published) == (50, 50)
    again = stack.poller().poll_once()  # a new process: state read back from disk
    assert (again.unchanged, again.published) == (50, 0)
    assert stack.bus.stats().backlog == 50


def test_the_same_message_delivered_twice_lands_once(stack: Stack) -> None:
    stack.poller().poll_once()
    (message,) = stack.bus.pull(1)
    stack.bus.publish([Message(message.data, message.attributes, message.ordering_key)])
    stack.bus.nack([message.ack_id])  # delivered again, and a second copy published
    result = stack.consume()
    assert (result.loaded, result.duplicates) == (50, 1)
    assert stack.rows("SELECT count(*), count(DISTINCT event_id) FROM bq_raw.carts_events") == [
        (50, 50)
    ]


def test_the_sink_leaves_the_database_settings_as_it_found_them(stack: Stack) -> None:
    stack.poller().poll_once()
    setting = "SELECT current_setting('checkpoint_threshold')"
    # A connection held across the consume keeps the database instance, and with it
    # the setting the sink changes for itself (database-wide in DuckDB).
    with stack.warehouse.connect() as held:
        before = held.execute(setting).fetchall()
        sink = stack.warehouse.event_sink()
        result = ConsumeResult()
        assert CartConsumer(stack.bus, sink, 500).consume_batch(result)
        assert result.loaded == 50
        assert held.execute(setting).fetchall() != before  # held by the sink meanwhile
        sink.release()
        assert held.execute(setting).fetchall() == before


class _SinkDownOnce:
    """The warehouse's event sink, except that write number ``down`` fails unwritten."""

    def __init__(self, sink: EventSink, down: int) -> None:
        self.sink, self.down, self.writes = sink, down, 0

    def write(self, rows: EventRows) -> int:
        self.writes += 1
        if self.writes == self.down:
            raise RuntimeError("warehouse unreachable")
        return self.sink.write(rows)

    def release(self) -> None:
        self.sink.release()


def test_a_failed_write_leaves_its_batch_unacked_and_gives_back_the_next(
    tmp_path: Path, server: tuple[str, ServerState]
) -> None:
    stack = Stack(tmp_path / "data", server[0], ack_deadline=3.0)
    try:
        stack.poller().poll_once()  # 50 events, in cart order
        sink = _SinkDownOnce(stack.warehouse.event_sink(), down=2)
        with pytest.raises(RuntimeError, match="warehouse unreachable"):
            CartConsumer(stack.bus, sink, 20).run(drain=True)
        # batch 1 committed and acked; batch 2 failed and stays leased; batch 3, pulled
        # while batch 2 was being written, was given back at once
        assert stack.rows("SELECT min(cart_id), max(cart_id) FROM bq_raw.carts_events") == [(1, 20)]
        again = stack.bus.pull(50)
        assert sorted(int(m.ordering_key) for m in again) == list(range(41, 51))
        stack.bus.nack([m.ack_id for m in again])
        time.sleep(3.0)  # batch 2's lease runs out
        result = stack.consume()
        assert (result.loaded, result.duplicates) == (30, 0)
        assert stack.rows(
            "SELECT count(*), count(DISTINCT event_id), min(cart_id), max(cart_id) "
            "FROM bq_raw.carts_events"
        ) == [(50, 50, 1, 50)]
    finally:
        stack.close()


def test_a_malformed_message_is_dead_lettered_and_the_rest_flow_on(stack: Stack) -> None:
    stack.poller().poll_once()
    (peeked,) = stack.bus.pull(1)
    stack.bus.nack([peeked.ack_id])
    good = orjson.loads(peeked.data)
    stack.bus.publish(
        [
            Message(b"{not json"),
            Message(orjson.dumps({**good, "event_id": "x"})),
            Message(orjson.dumps({**good, "event_id": "Z" * 32})),
            Message(orjson.dumps({**good, "event_type": "cart_deleted"})),
        ]
    )
    outcome = stack.consume()
    assert (outcome.loaded, outcome.dead_lettered) == (50, 4)
    reasons = [d.attributes["dead_letter_reason"] for d in stack.bus.dead_letters()]
    assert any("Invalid JSON" in r or "json" in r.lower() for r in reasons)
    assert [r for r in reasons if r.startswith("event_id: String should match pattern")] == [
        "event_id: String should match pattern '^[0-9a-f]{32}$'"
    ] * 2
    assert any(
        r.startswith(("content_hash: Input should be null", "cart: Input should be null"))
        for r in reasons
    )
    assert stack.bus.stats().dead_letters == 4


def test_live_mode_gives_created_updated_deleted_in_order(tmp_path: Path) -> None:
    app = create_app(Catalog(n_carts=10), live_rate=60)
    with serve_in_thread(app) as url:
        s = Stack(tmp_path / "data", url)
        try:
            for _ in range(12):
                s.poller().poll_once()
                time.sleep(0.12)
            s.consume()
            history = s.rows("""SELECT cart_id, list(cart_version ORDER BY _bus_message_id::BIGINT),
                                       list(event_type ORDER BY _bus_message_id::BIGINT)
                                FROM bq_raw.carts_events GROUP BY cart_id""")
            latest = s.rows("""SELECT cart_id, cart FROM bq_raw.carts_events
                               QUALIFY row_number() OVER (PARTITION BY cart_id
                                                          ORDER BY extracted_at DESC,
                                                                   cart_version DESC) = 1""")
        finally:
            s.close()
    kinds = {k for _, _, types in history for k in types}
    assert kinds == {"cart_created", "cart_updated", "cart_deleted"}
    for cart_id, versions, types in history:
        assert versions == list(range(1, len(versions) + 1)), cart_id
        assert types[0] == "cart_created"
        for before, after in itertools.pairwise(types):
            assert (before == "cart_deleted") == (after == "cart_created"), (cart_id, types)
    assert latest  # exact reconciliation needs a still server: see the next test


def test_reconciliation_after_draining(stack: Stack, server: tuple[str, ServerState]) -> None:
    from ey_platform.source.data import LiveChanges

    changes = LiveChanges(server[1].catalog)
    for _ in range(3):
        stack.poller().poll_once()
        for _ in range(30):
            changes.step()
    stack.poller().poll_once()
    stack.consume()
    assert _latest_carts(stack) == _held_carts(server[1])


_LATEST = """SELECT cart_id, cart FROM bq_raw.carts_events
             QUALIFY row_number() OVER (PARTITION BY cart_id
                                        ORDER BY extracted_at DESC, cart_version DESC) = 1"""


def _latest_carts(stack: Stack, latest: str = _LATEST) -> dict[int, Any]:
    """Each cart in the state the events say it was last seen in; deleted ones left out."""
    return {cid: orjson.loads(cart) for cid, cart in stack.rows(latest) if cart is not None}


def _held_carts(state: ServerState) -> dict[int, Any]:
    return {cid: orjson.loads(row) for cid, row in state.catalog.carts.rows.items()}


def test_a_poller_that_lost_its_state_starts_from_the_warehouse(
    stack: Stack, server: tuple[str, ServerState]
) -> None:
    from ey_platform.source.data import LiveChanges

    changes = LiveChanges(server[1].catalog)
    for _ in range(3):  # carts reach versions 2 and 3, some are deleted
        stack.poller().poll_once()
        for _ in range(40):
            changes.step()
    stack.consume()
    stack.poller().poll_once()  # its events stay on the bus: the warehouse lags
    for state in stack.states:
        state.close()
    stack.states.clear()
    for leftover in (stack.data / "stream").glob("poller.sqlite3*"):
        leftover.unlink()  # the poller's memory is gone: a fresh disk
    for _ in range(40):  # changes, deletions among them, while it was away
        changes.step()
    poller = stack.poller(reconcile_every=0.0)
    again = poller.poll_once()
    # from memory alone it would create every cart and delete none
    assert again.unchanged > 0
    assert again.deleted > 0
    stack.consume()
    # Carts created in the events that were on the bus, and deleted while the poller
    # was away, are known to nobody but the warehouse: the next check deletes them.
    strays = _latest_carts(stack).keys() - _held_carts(server[1]).keys()
    assert strays  # the case arose
    after = poller.poll_once()
    assert after.deleted == len(strays)
    assert (after.created, after.updated) == (0, 0)
    stack.consume()
    assert _latest_carts(stack) == _held_carts(server[1])
    assert poller.poll_once().published == 0  # and nothing is left to fix


class _Asked:
    """The warehouse's cart states, recording what the poller asked for (True: the live
    carts only); with ``fail_first``, the first question fails as a locked warehouse."""

    def __init__(self, stack: Stack, asked: list[bool], *, fail_first: bool = False) -> None:
        self.warehouse, self.asked, self.fail_first = stack.warehouse, asked, fail_first

    def _ask(self, alive_only: bool) -> None:
        self.asked.append(alive_only)
        if self.fail_first and len(self.asked) == 1:
            raise WarehouseError("warehouse locked")

    def cart_states(self) -> Any:
        self._ask(False)
        return self.warehouse.cart_states()

    def live_cart_states(self) -> Any:
        self._ask(True)
        return self.warehouse.live_cart_states()


def _poller_asking(stack: Stack, landed: Any) -> CartPoller:
    state = SQLitePollerState(stack.data / "stream" / "poller.sqlite3")
    stack.states.append(state)
    return CartPoller(stack.client, stack.bus, state, LocalLake(stack.data / "lake"), landed=landed)


def test_a_recovery_counts_as_the_check_and_a_failed_check_is_tried_again(
    stack: Stack,
) -> None:
    stack.poller().poll_once()
    stack.consume()
    for state in stack.states:
        state.close()
    stack.states.clear()
    for leftover in (stack.data / "stream").glob("poller.sqlite3*"):
        leftover.unlink()
    asked: list[bool] = []  # alive only?
    assert _poller_asking(stack, _Asked(stack, asked)).poll_once().unchanged == 50
    assert asked == [False]  # the recovery, and no check of what it just read

    down: list[bool] = []
    unreachable = _Asked(stack, down, fail_first=True)
    poller = _poller_asking(stack, unreachable)  # memory intact: a check at its first poll
    assert poller.poll_once().status == "succeeded"  # the check failed, the poll did not
    poller.poll_once()
    assert down == [True, True]  # tried again at the next poll
    poller.poll_once()
    assert down == [True, True]  # then not before its period


@pytest.mark.slow
def test_a_consumer_killed_mid_batch_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serve_in_thread(create_app(Catalog(n_carts=20_000))) as url:
        s = Stack(data, url)
        s.poller().poll_once()
        s.close()
    env = {"EYP_BUS__ACK_DEADLINE": "1", "EYP_STREAM__BATCH_SIZE": "500"}
    bus = SQLiteBus(data / "bus.sqlite3")
    consumer = _cli(data, "consume", env=env)
    _wait_for(lambda: bus.stats().backlog < 15_000)
    consumer.send_signal(signal.SIGKILL)
    consumer.communicate()
    assert 0 < bus.stats().backlog < 20_000
    _finish(_cli(data, "consume", "--drain", env=env))
    bus.close()
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        counts = con.execute(
            "SELECT count(*), count(DISTINCT event_id), count(DISTINCT cart_id), "
            "min(cart_id), max(cart_id) FROM bq_raw.carts_events"
        ).fetchone()
    assert counts == (20_000, 20_000, 20_000, 1, 20_000)


@pytest.mark.slow
def test_a_poller_killed_between_publish_and_state_save_duplicates_nothing(
    tmp_path: Path, server: tuple[str, ServerState]
) -> None:
    url, state = server
    data = tmp_path / "data"
    state_path = data / "stream" / "poller.sqlite3"
    SQLitePollerState(state_path).close()
    state.faults = FaultPlan.parse("latency=1")
    poller = _cli(data, "poll", "--once", "--api-url", url)
    reader = sqlite3.connect(state_path)
    _wait_for(lambda: reader.execute("SELECT count(*) FROM polls").fetchone()[0] == 1)
    blocker = sqlite3.connect(state_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the poller will publish, then wait to save
    bus = SQLiteBus(data / "bus.sqlite3")
    _wait_for(lambda: (data / "bus.sqlite3").exists() and _backlog(bus) == 50)
    poller.send_signal(signal.SIGKILL)
    poller.communicate()
    blocker.execute("ROLLBACK")
    blocker.close()
    assert reader.execute("SELECT count(*) FROM carts").fetchone()[0] == 0  # never saved
    reader.close()
    state.faults = FaultPlan()
    _finish(_cli(data, "poll", "--once", "--api-url", url))
    assert bus.stats().backlog == 100  # every event published twice, same ids
    out = _finish(_cli(data, "consume", "--drain"))
    assert "50 loaded, 50 duplicates skipped" in out
    bus.close()
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM bq_raw.carts_events"
        ).fetchone() == (50, 50)


def _backlog(bus: SQLiteBus) -> int:
    try:
        return bus.stats().backlog
    except BusError:
        return 0  # not set up yet


@pytest.mark.slow
def test_stream_run_polls_consumes_and_stops_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serve_in_thread(create_app(Catalog(), live_rate=20)) as url:
        proc = _cli(data, "run", "--interval", "0.5", "--api-url", url)
        time.sleep(6)
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=60)
    assert proc.returncode == 0, log
    assert log.count("stream.poll ") >= 3 and "stream.consume" in log
    assert "Traceback" not in log
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        (events, kinds) = con.execute(
            "SELECT count(*), count(DISTINCT event_type) FROM bq_raw.carts_events"
        ).fetchone()  # type: ignore[misc]
    assert events > 7 and kinds >= 2


def test_status_shows_backlog_dead_letters_and_the_last_poll(stack: Stack) -> None:
    stack.poller().poll_once()
    stack.bus.publish([Message(b"{not json")])
    CartConsumer(stack.bus, stack.warehouse.event_sink(), 20).consume_batch(ConsumeResult())
    out = _finish(_cli(stack.data, "status"))
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in out.splitlines()
        if line.count("│") == 3
    }
    assert rows["backlog (unacked)"] == "31"  # 51 published, 20 handled
    assert rows["dead letters"] == "0"
    assert rows["last poll"].endswith("succeeded: 50 carts, +50 ~0 -0")
