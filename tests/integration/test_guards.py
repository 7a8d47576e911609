"""Answers that would destroy stored data are not taken at face value: a collection
answered with null, a complete fetch far smaller than what is stored. Through the real
command line, against the bundled server, on a real data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from ey_platform.bus.sqlite import SQLiteBus
from ey_platform.source.data import Catalog
from tests.cli import cli, one_error_line, rows
from tests.conftest import FakeStore

DAY, NEXT_DAY = "2026-11-26", "2026-11-27"


def latest_carts(data: Path) -> set[int]:
    """Carts alive in their latest landed state, as fact_orders reads them."""
    found = rows(
        data,
        """SELECT cart_id FROM bq_raw.carts_events QUALIFY row_number() OVER (
               PARTITION BY cart_id ORDER BY extracted_at DESC, cart_version DESC) = 1
           AND event_type <> 'cart_deleted'""",
    )
    return {cart for (cart,) in found}


def backlog(data: Path) -> int:
    bus = SQLiteBus(data / "bus.sqlite3")
    try:
        return bus.stats().backlog or 0
    finally:
        bus.close()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_a_null_collection_fails_the_batch_and_keeps_the_day(
    fakestore: FakeStore, data: Path
) -> None:
    assert cli(data, fakestore.url, "batch", "--date", DAY).returncode == 0
    before = rows(data, "SELECT _run_id, count(*) FROM bq_raw.users GROUP BY 1")
    fakestore.faults("null=1")
    line = one_error_line(cli(data, fakestore.url, "batch", "--date", DAY))
    assert "GET /products failed after 2 attempts" in line and "null body" in line
    assert rows(data, "SELECT count(*) FROM bq_raw.products") == [(20,)]
    assert rows(data, "SELECT _run_id, count(*) FROM bq_raw.users GROUP BY 1") == before


def test_a_null_collection_fails_the_poll_and_deletes_nothing(
    fakestore: FakeStore, data: Path
) -> None:
    fakestore.state.catalog = Catalog(n_carts=300)
    assert cli(data, fakestore.url, "stream", "poll", "--once").returncode == 0
    assert cli(data, fakestore.url, "stream", "consume", "--drain").returncode == 0
    assert len(latest_carts(data)) == 300
    fakestore.faults("null=1")
    line = one_error_line(cli(data, fakestore.url, "stream", "poll", "--once"))
    assert "GET /carts failed after 2 attempts" in line and "null body" in line
    assert backlog(data) == 0  # nothing published
    fakestore.faults("")
    assert cli(data, fakestore.url, "stream", "poll", "--once").returncode == 0
    assert cli(data, fakestore.url, "stream", "consume", "--drain").returncode == 0
    assert len(latest_carts(data)) == 300


def test_a_poll_that_deletes_most_carts_is_refused_until_allowed(
    fakestore: FakeStore, data: Path
) -> None:
    fakestore.state.catalog = Catalog(n_carts=10)
    assert cli(data, fakestore.url, "stream", "poll", "--once").returncode == 0
    assert cli(data, fakestore.url, "stream", "consume", "--drain").returncode == 0
    fakestore.state.catalog = Catalog(seed=7, n_carts=4)  # 4 carts, every one of them changed
    line = one_error_line(cli(data, fakestore.url, "stream", "poll", "--once"))
    assert "would delete 6 of the 10 live carts (60%" in line
    assert "EYP_STREAM__MAX_DELETE_FRACTION=0.5" in line and "--allow-mass-delete" in line
    assert backlog(data) == 0  # not even the 4 updates went out
    # An operator who knows the carts are gone accepts the poll.
    allowed = cli(data, fakestore.url, "stream", "poll", "--once", "--allow-mass-delete")
    assert allowed.returncode == 0, allowed.stderr
    assert cli(data, fakestore.url, "stream", "consume", "--drain").returncode == 0
    assert latest_carts(data) == {1, 2, 3, 4}


def test_the_delete_fraction_is_a_setting(fakestore: FakeStore, data: Path) -> None:
    fakestore.state.catalog = Catalog(n_carts=10)
    assert cli(data, fakestore.url, "stream", "poll", "--once").returncode == 0
    fakestore.state.catalog = Catalog(n_carts=8)  # 2 of 10 gone: 20%
    strict = cli(
        data, fakestore.url, "stream", "poll", "--once", EYP_STREAM__MAX_DELETE_FRACTION="0.1"
    )
    assert "would delete 2 of the 10 live carts" in one_error_line(strict)
    assert cli(data, fakestore.url, "stream", "poll", "--once").returncode == 0  # default 0.5
    assert cli(data, fakestore.url, "stream", "consume", "--drain").returncode == 0
    assert len(latest_carts(data)) == 8


def test_a_day_with_far_fewer_users_is_held_until_forced(fakestore: FakeStore, data: Path) -> None:
    assert cli(data, fakestore.url, "batch", "--date", DAY).returncode == 0
    fakestore.state.catalog = Catalog(n_users=4)
    held = cli(data, fakestore.url, "batch", "--date", NEXT_DAY)
    line = one_error_line(held)
    assert "users 2026-11-27: 4 users records, fewer than 50% of the median 10" in line
    assert "--force" in line
    assert "held" in held.stdout  # the result table shows it
    # products went through; users of the next day were not loaded, the day before kept.
    assert rows(data, "SELECT _ingestion_date::VARCHAR, count(*) FROM bq_raw.users GROUP BY 1") == [
        (DAY, 10)
    ]
    assert rows(
        data, f"SELECT count(*) FROM bq_raw.products WHERE _ingestion_date = '{NEXT_DAY}'"
    ) == [(20,)]
    recorded = rows(
        data,
        "SELECT status, error FROM bq_raw._pipeline_runs "
        f"WHERE entity = 'users' AND ingestion_date = '{NEXT_DAY}'",
    )
    assert recorded == [("held", recorded[0][1])] and "fewer than 50%" in recorded[0][1]
    # The gate's result is recorded beside the run, the schema's too.
    assert rows(
        data,
        "SELECT check_name, status, observed FROM bq_raw._quality_results "
        "WHERE entity = 'users' AND run_id = (SELECT max(run_id) FROM bq_raw._quality_results) "
        "ORDER BY 1",
    ) == [("schema", "pass", "16 fields"), ("volume", "fail", "4 records")]
    forced = cli(data, fakestore.url, "batch", "--date", NEXT_DAY, "--force")
    assert forced.returncode == 0, forced.stderr
    assert rows(
        data, f"SELECT count(*) FROM bq_raw.users WHERE _ingestion_date = '{NEXT_DAY}'"
    ) == [(4,)]


def test_rerunning_a_day_with_fewer_rows_is_held_and_keeps_the_day(
    fakestore: FakeStore, data: Path
) -> None:
    assert cli(data, fakestore.url, "batch", "--date", DAY, "--entity", "users").returncode == 0
    fakestore.state.catalog = Catalog(n_users=2)
    one_error_line(cli(data, fakestore.url, "batch", "--date", DAY, "--entity", "users"))
    assert rows(data, "SELECT count(*) FROM bq_raw.users") == [(10,)]
    # The reload of that day from the lake meets the same guard: its latest run is small.
    one_error_line(
        cli(data, fakestore.url, "batch", "--date", DAY, "--entity", "users", "--from-lake")
    )
    assert rows(data, "SELECT count(*) FROM bq_raw.users") == [(10,)]


def test_an_empty_answer_is_held_even_on_a_first_run(fakestore: FakeStore, data: Path) -> None:
    fakestore.faults("empty=1")
    line = one_error_line(cli(data, fakestore.url, "batch", "--date", DAY))
    assert "products" in line and "the API answered no valid products record" in line
    assert rows(data, "SELECT count(*) FROM bq_raw.products") == [(0,)]
    assert rows(data, "SELECT entity, status FROM bq_raw._pipeline_runs ORDER BY 1") == [
        ("products", "held"),
        ("users", "held"),
    ]


def test_an_empty_carts_answer_deletes_nothing(fakestore: FakeStore, data: Path) -> None:
    assert cli(data, fakestore.url, "stream", "poll", "--once").returncode == 0
    fakestore.faults("empty=1")
    line = one_error_line(cli(data, fakestore.url, "stream", "poll", "--once"))
    assert "the API answered 0 carts, which would delete 7 of the 7 live carts" in line


def test_drain_waits_for_messages_leased_to_a_dead_consumer(
    fakestore: FakeStore, data: Path
) -> None:
    assert cli(data, fakestore.url, "stream", "poll", "--once").returncode == 0
    # Long enough that the consumer below starts while the leases still run, even on a
    # loaded machine.
    bus = SQLiteBus(data / "bus.sqlite3", ack_deadline=8)
    bus.setup()  # the subscription's deadline is now 8 s
    try:
        leased = bus.pull(100)  # a consumer that takes them and dies
    finally:
        bus.close()
    assert len(leased) == 7
    result = cli(data, fakestore.url, "stream", "consume", "--drain", EYP_BUS__ACK_DEADLINE="8")
    assert result.returncode == 0, result.stderr
    assert "consumed 7 messages: 7 loaded" in result.stdout
    assert "stream.drain_waiting" in result.stderr and "leased=7" in result.stderr
    assert len(latest_carts(data)) == 7


def test_a_quarantined_cart_is_not_deleted(fakestore: FakeStore, data: Path) -> None:
    import orjson

    fakestore.state.catalog = Catalog(n_carts=10)
    assert cli(data, fakestore.url, "stream", "poll", "--once").returncode == 0
    carts = fakestore.state.catalog.carts
    for cart_id in (2, 5, 7):  # the source starts sending these three broken
        cart = orjson.loads(carts.rows[cart_id])
        cart["products"][0]["quantity"] = -1
        carts.rows[cart_id] = orjson.dumps(cart)
    result = cli(data, fakestore.url, "stream", "poll", "--once")
    assert result.returncode == 0, result.stderr
    assert "quarantined=3" in result.stderr and "carts_deleted=0" in result.stderr
    assert cli(data, fakestore.url, "stream", "consume", "--drain").returncode == 0
    assert len(latest_carts(data)) == 10
    (quarantine,) = (data / "lake" / "quarantine" / "carts").rglob("*.jsonl")
    assert len(quarantine.read_bytes().splitlines()) == 3
