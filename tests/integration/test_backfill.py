"""``batch --from-lake --start D1 --end D2``: days landed against the bundled server, the
warehouse file deleted, then the range reloaded through the real command line."""

from __future__ import annotations

import os
import re
from datetime import date, timedelta
from io import StringIO
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from ey_platform.cli import output
from ey_platform.lake.base import manifests
from ey_platform.lake.local import LocalLake
from ey_platform.models import BATCH_ENTITIES, Entity
from ey_platform.settings import load_settings
from ey_platform.source.client import FakeStoreClient
from ey_platform.wiring import batch_pipeline
from tests.cli import cli, rows
from tests.conftest import FakeStore

DAYS = [date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 26)]
RANGE = ("--start", str(DAYS[0]), "--end", str(DAYS[-1]))
# A row of the summary table: day, entity, status, rows, seconds.
ROW = re.compile(r"(\d{4}-\d\d-\d\d) +│ +(\w+) +│ +(\w+) +│ +([\d,]*) +│ +([\d.]*) ")


def land(fakestore: FakeStore, data: Path, day: date, *entities: Entity) -> None:
    """One batch of ``day`` against the bundled server, as the daily job lands it."""
    settings = load_settings(data_dir=data, warehouse={"duckdb": {"lock_timeout": 5}})
    with FakeStoreClient(fakestore.url) as client:
        results = batch_pipeline(settings, client).run(entities or BATCH_ENTITIES, day)
    assert {r.status for r in results} <= {"loaded", "held"}


def forget(fakestore: FakeStore, entity: str, ids: range) -> None:
    """The source no longer serves the records ``ids`` of ``entity``."""
    for rid in ids:
        fakestore.state.catalog.table(entity).delete(rid)


@pytest.fixture
def data(fakestore: FakeStore, tmp_path: Path) -> Path:
    """Three days in the lake, each with other counts (one user quarantined on the second
    day), and no warehouse."""
    data = tmp_path / "data"
    land(fakestore, data, DAYS[0])
    forget(fakestore, "products", range(1, 3))
    bad = orjson.loads(fakestore.state.catalog.users.rows[4])
    fakestore.state.catalog.users.rows[4] = orjson.dumps({**bad, "id": "four"})
    land(fakestore, data, DAYS[1])
    forget(fakestore, "products", range(3, 4))
    forget(fakestore, "users", range(4, 7))
    land(fakestore, data, DAYS[2])
    (data / "warehouse.duckdb").unlink()
    return data


def summary(stdout: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(day, entity) -> (status, rows) from the backfill's table."""
    return {(m[1], m[2]): (m[3], m[4]) for m in ROW.finditer(stdout)}


def committed(data: Path, entity: str, day: date) -> dict[str, object]:
    """The run of ``day`` that a reload picks: the last extracted."""
    runs = manifests(LocalLake(data / "lake"), entity, day)
    return max(runs, key=lambda m: (m["extracted_at"], m["run_id"]))


def loaded(data: Path, entity: str) -> dict[date, tuple[int, set[str]]]:
    """Rows and run ids of each ingestion date in the warehouse."""
    found = rows(
        data,
        f"SELECT _ingestion_date, count(*), list(DISTINCT _run_id) FROM bq_raw.{entity} GROUP BY 1",
    )
    return {day: (count, set(runs)) for day, count, runs in found}


def test_a_backfill_rebuilds_every_day_as_its_manifest_says(
    fakestore: FakeStore, data: Path
) -> None:
    first = cli(data, fakestore.url, "batch", "--from-lake", *RANGE)
    assert first.returncode == 0, first.stdout + first.stderr
    for entity in BATCH_ENTITIES:
        manifest = {day: committed(data, entity, day) for day in DAYS}
        expected = {d: (m["records"], {m["run_id"]}) for d, m in manifest.items()}
        assert loaded(data, entity) == expected
        shown = {d: summary(first.stdout)[str(d), entity] for d in DAYS}
        assert shown == {d: ("loaded", str(m["records"])) for d, m in manifest.items()}
    # the counts differ from day to day, so a day loaded from another's files would show
    assert [loaded(data, "products")[d][0] for d in DAYS] == [20, 18, 17]
    assert [loaded(data, "users")[d][0] for d in DAYS] == [10, 9, 7]
    assert rows(data, "SELECT count(*) FROM bq_raw._quarantine") == [(1,)]
    # every day and entity is its own run, in date order
    runs = rows(
        data,
        "SELECT ingestion_date, entity, status FROM bq_raw._pipeline_runs "
        "WHERE job = 'batch' ORDER BY started_at, entity",
    )
    assert runs == [(d, e, "loaded") for d in DAYS for e in BATCH_ENTITIES]
    before = {entity: loaded(data, entity) for entity in BATCH_ENTITIES}
    again = cli(data, fakestore.url, "batch", "--from-lake", *RANGE)
    assert again.returncode == 0, again.stdout + again.stderr
    statuses = {key: status for key, (status, _) in summary(again.stdout).items()}
    assert statuses == {(str(d), e): "unchanged" for d in DAYS for e in BATCH_ENTITIES}
    assert {entity: loaded(data, entity) for entity in BATCH_ENTITIES} == before


def test_a_day_the_lake_lacks_is_shown_missing_and_is_no_error(
    fakestore: FakeStore, data: Path
) -> None:
    before = DAYS[0] - timedelta(days=1)
    result = cli(
        data, fakestore.url, "batch", "--from-lake", "--entity", "users",
        "--start", str(before), "--end", str(DAYS[1]),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary(result.stdout) == {
        (str(before), "users"): ("missing", ""),
        (str(DAYS[0]), "users"): ("loaded", "10"),
        (str(DAYS[1]), "users"): ("loaded", "9"),
    }
    assert sorted(loaded(data, "users")) == DAYS[:2]
    assert rows(data, "SELECT count(*) FROM bq_raw.products") == [(0,)]


def test_a_failed_day_stops_the_backfill_and_the_days_before_stay_loaded(
    fakestore: FakeStore, data: Path
) -> None:
    run_id = committed(data, "products", DAYS[1])["run_id"]
    (part,) = (data / "lake").rglob(f"products-{run_id}-p00000.jsonl")
    part.chmod(0o644)
    part.write_bytes(part.read_bytes().replace(b'"price":', b'"price": ', 1))
    result = cli(data, fakestore.url, "batch", "--from-lake", *RANGE)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith(
        f"error: backfill stopped at {DAYS[1]} (the days before it stay loaded): {part.resolve()} "
        "does not match its manifest: bytes"
    ), result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(loaded(data, "products")) == sorted(loaded(data, "users")) == DAYS[:1]


def test_a_held_day_is_exit_1_the_others_load_and_force_loads_it(
    fakestore: FakeStore, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    land(fakestore, data, DAYS[0], "products")
    forget(fakestore, "products", range(1, 16))  # 5 of 20: under half the median
    land(fakestore, data, DAYS[1], "products")
    forget(fakestore, "products", range(16, 17))  # 4, then day 3 compares with day 1
    land(fakestore, data, DAYS[2], "products")
    (data / "warehouse.duckdb").unlink()
    args = ("batch", "--from-lake", "--entity", "products", *RANGE)
    held = cli(data, fakestore.url, *args)
    assert held.returncode == 1
    assert summary(held.stdout) == {
        (str(DAYS[0]), "products"): ("loaded", "20"),
        (str(DAYS[1]), "products"): ("held", "5"),
        (str(DAYS[2]), "products"): ("held", "4"),
    }
    assert (
        held.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: batch held: products {DAYS[1]}: 5 products records, fewer than 50%")
    )
    assert sorted(loaded(data, "products")) == DAYS[:1]
    forced = cli(data, fakestore.url, *args, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert [s for s, _ in summary(forced.stdout).values()] == ["unchanged", "loaded", "loaded"]
    assert [loaded(data, "products")[d][0] for d in DAYS] == [20, 5, 4]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (RANGE, "--start/--end reload days from the lake: add --from-lake"),
        (
            ("--from-lake", "--start", str(DAYS[1]), "--end", str(DAYS[0])),
            f"--end {DAYS[0]} is before --start {DAYS[1]}",
        ),
        (
            ("--from-lake", "--date", str(DAYS[0]), *RANGE),
            "--date is one day, --start/--end a range: give one or the other",
        ),
        (
            ("--from-lake", "--start", str(DAYS[0])),
            "--start and --end go together: the first and last day to reload",
        ),
        (
            ("--from-lake", "--start", "2026-11-31", "--end", str(DAYS[0])),
            "--start: expected YYYY-MM-DD, got '2026-11-31'",
        ),
        (
            ("--from-lake", *RANGE),
            f"no committed products or users run in the lake {{lake}}/raw from {DAYS[0]} "
            f"to {DAYS[-1]}",
        ),
    ],
    ids=["no-from-lake", "end-before-start", "with-date", "start-alone", "bad-day", "empty"],
)
def test_a_wrong_range_is_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    data = tmp_path / "data"
    result = cli(data, "http://127.0.0.1:9", "batch", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    lake = Path(os.path.realpath(data / "lake"))
    assert result.stderr.splitlines() == [f"error: {message.format(lake=lake)}"]
    assert not (data / "warehouse.duckdb").exists()


def test_a_long_backfill_keeps_only_its_latest_bars() -> None:
    bars = output._Bars(Console(file=StringIO(), width=100, force_terminal=True))
    labels = [f"{entity} {DAYS[0] + timedelta(days=n)}" for n in range(5) for entity in "ab"]
    with bars.bar:
        for label in labels:
            bars.update(label, 3, total=3)
        bars.finish(complete=True)
    shown = [task.description for task in bars.bar.tasks]
    assert shown == labels[-output.KEPT_BARS :]
