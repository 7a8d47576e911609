"""``ey-platform health`` through the real command line on a real data folder: healthy
after the demo, unhealthy once the sources are two days old, a held day, or before
anything ran; ``--json`` for machines."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from ey_platform.source.data import Catalog
from tests.cli import cli
from tests.conftest import FakeStore


def findings(data: Path, url: str) -> tuple[int, dict[str, dict[str, str]]]:
    """The exit status of ``health --json`` and its findings by area and subject."""
    result = cli(data, url, "health", "--json")
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is (result.returncode == 0)
    return result.returncode, {f"{f['area']} {f['subject']}": f for f in report["findings"]}


def test_healthy_after_the_demo_and_not_once_the_sources_are_two_days_old(
    fakestore: FakeStore, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    demo = cli(data, fakestore.url, "demo", "--api-url", fakestore.url)
    assert demo.returncode == 0, demo.stderr
    status, found = findings(data, fakestore.url)
    assert status == 0, found
    assert {found[k]["status"] for k in ("job batch products", "job batch users", "job poll")} == {
        "ok"
    }
    assert found["freshness products"]["status"] == "ok"
    assert found["stream backlog"]["detail"].startswith("0 unacked")
    assert found["stream dead letters"]["status"] == "ok"
    table = cli(data, fakestore.url, "health")
    assert table.returncode == 0 and "healthy" in table.stdout

    with duckdb.connect(str(data / "warehouse.duckdb")) as con:
        for name in ("products", "users", "carts_events"):
            con.execute(f"UPDATE bq_raw.{name} SET _loaded_at = _loaded_at - INTERVAL 2 DAY")
    status, found = findings(data, fakestore.url)
    assert status == 1
    for source in ("products", "users"):
        assert found[f"freshness {source}"]["status"] == "fail"
        assert (
            "last loaded 2.0 d ago (warn after 26.0 h, error after 36.0 h)"
            in (found[f"freshness {source}"]["detail"])
        )
    # Carts land only when one changes: a quiet stream warns, it does not fail.
    assert found["freshness carts_events"]["status"] == "warn"
    table = cli(data, fakestore.url, "health")
    assert table.returncode == 1 and "not healthy" in table.stdout


def test_a_held_day_makes_the_platform_unhealthy_until_a_good_day(
    fakestore: FakeStore, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    assert cli(data, fakestore.url, "batch", "--date", "2026-11-26").returncode == 0
    assert findings(data, fakestore.url)[0] == 0
    fakestore.state.catalog = Catalog(n_users=4)
    assert cli(data, fakestore.url, "batch", "--date", "2026-11-27").returncode == 1
    status, found = findings(data, fakestore.url)
    assert status == 1
    assert found["job batch users"]["status"] == "fail"
    assert found["quality volume users"]["status"] == "fail"
    assert found["quality volume users"]["detail"].startswith("4 records (expected >= 50% of 10")
    assert found["incident batch.held:users"]["status"] == "warn"
    fakestore.state.catalog = Catalog()
    assert cli(data, fakestore.url, "batch", "--date", "2026-11-28").returncode == 0
    status, found = findings(data, fakestore.url)
    assert status == 0, found
    assert "incident batch.held:users" not in found


def test_before_anything_ran_health_says_so_in_one_finding(
    fakestore: FakeStore, tmp_path: Path
) -> None:
    status, found = findings(tmp_path / "nothing", fakestore.url)
    assert status == 1
    (warehouse,) = (f for f in found.values() if f["area"] == "warehouse")
    assert "no warehouse" in warehouse["detail"]
    assert not (tmp_path / "nothing").exists()  # only reads: nothing created


def test_a_table_that_cannot_be_read_fails_its_own_finding_only(
    fakestore: FakeStore, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    assert cli(data, fakestore.url, "batch", "--date", "2026-11-26").returncode == 0
    with duckdb.connect(str(data / "warehouse.duckdb")) as con:  # as an older version left it
        con.execute("DROP TABLE bq_raw._quality_results")
    status, found = findings(data, fakestore.url)
    assert status == 1
    assert found["quality unreadable"]["status"] == "fail"
    assert "_quality_results" in found["quality unreadable"]["detail"]
    assert found["job batch users"]["status"] == "ok"  # the rest is still shown
    assert found["freshness users"]["status"] == "ok"
