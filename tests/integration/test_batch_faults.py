"""The batch when files are altered, runs are killed and the warehouse file is damaged:
nothing stored is lost or half-written, and every failure is one line. Real processes,
real SIGKILLs, real files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psutil
import pytest

from ey_platform.source.data import Catalog
from ey_platform.source.server import create_app, serve_in_thread
from tests.conftest import FakeStore
from tests.integration.test_guards import cli, one_error_line, rows

DAY = "2026-11-26"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def parts(data: Path, entity: str, pattern: str = "*-p*.jsonl") -> list[Path]:
    return sorted((data / "lake" / "raw" / entity).rglob(pattern))


def users_table(data: Path) -> list[tuple[Any, ...]]:
    return rows(data, "SELECT _raw::VARCHAR, _run_id, _loaded_at FROM bq_raw.users ORDER BY id")


def rewrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)  # published parts are read-only: this is an outside hand
    path.write_bytes(data)


def test_reload_refuses_a_part_altered_in_place(fakestore: FakeStore, data: Path) -> None:
    assert cli(data, fakestore.url, "batch", "--date", DAY).returncode == 0
    before = users_table(data)
    (part,) = parts(data, "users")
    text = part.read_bytes()
    altered = re.sub(rb'"phone":"1', b'"phone":"9', text, count=1)  # same length, valid JSON
    assert altered != text and len(altered) == len(text)
    rewrite(part, altered)
    result = cli(data, fakestore.url, "batch", "--date", DAY, "--from-lake", "--entity", "users")
    line = one_error_line(result)
    assert f"{part} does not match its manifest: sha256" in line
    assert users_table(data) == before  # the warehouse is untouched


def test_reload_of_a_truncated_part_names_it_and_stores_no_record_text(
    fakestore: FakeStore, data: Path
) -> None:
    assert cli(data, fakestore.url, "batch", "--date", DAY).returncode == 0
    before = users_table(data)
    (part,) = parts(data, "users")
    text = part.read_bytes()
    rewrite(part, text[: len(text) // 2])
    result = cli(data, fakestore.url, "batch", "--date", DAY, "--from-lake", "--entity", "users")
    line = one_error_line(result)
    assert f"{part} does not match its manifest: bytes {len(text) // 2} instead of {len(text)}"
    assert "@" not in line and "phone" not in line  # no record text: e-mails, fields
    ((error,),) = rows(data, "SELECT error FROM bq_raw._pipeline_runs WHERE status = 'failed'")
    assert "does not match its manifest" in error and "@" not in error
    assert users_table(data) == before


@pytest.mark.parametrize(
    "damage",
    [b'{"run_id": "x", "parts": [', b'{"run_id": "x"}', b'{"run_id": 1, "parts": "p"}', b"[]"],
    ids=["not-json", "missing-fields", "wrong-types", "not-an-object"],
)
def test_a_damaged_manifest_is_one_line_and_a_new_extraction_still_works(
    fakestore: FakeStore, data: Path, damage: bytes
) -> None:
    assert cli(data, fakestore.url, "batch", "--date", DAY).returncode == 0
    (manifest,) = parts(data, "users", "*.manifest.json")
    rewrite(manifest, damage)
    result = cli(data, fakestore.url, "batch", "--date", DAY, "--from-lake", "--entity", "users")
    line = one_error_line(result)
    assert f"manifest {manifest} is damaged" in line
    again = cli(data, fakestore.url, "batch", "--date", DAY)
    assert again.returncode == 0, again.stderr
    assert "loaded" in again.stdout  # the loaded run's manifest is unreadable: reload the day
    assert rows(data, "SELECT count(*) FROM bq_raw.users") == [(10,)]


def test_the_same_records_in_other_parts_are_unchanged(data: Path) -> None:
    with serve_in_thread(create_app(Catalog(n_users=30_000, n_products=5))) as url:
        small = cli(data, url, "batch", "--date", DAY, "--entity", "users", EYP_BATCH__PART_MB="1")
        assert small.returncode == 0, small.stderr
        assert len(parts(data, "users")) >= 3
        default = cli(data, url, "batch", "--date", DAY, "--entity", "users")
    assert default.returncode == 0, default.stderr
    assert "unchanged" in default.stdout
    assert len(parts(data, "users")) >= 4  # the second run landed its own single part
    statuses = rows(data, "SELECT status FROM bq_raw._pipeline_runs ORDER BY started_at")
    assert statuses == [("loaded",), ("unchanged",)]


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.fixture
def big_users() -> Iterator[str]:
    with serve_in_thread(create_app(Catalog(n_users=400_000, n_products=5))) as url:
        yield url


@pytest.mark.slow
def test_a_killed_batch_leaves_no_process_and_the_next_run_clears_its_debris(
    big_users: str, data: Path
) -> None:
    env = {
        **os.environ,
        "EYP_DATA_DIR": str(data),
        "EYP_API_URL": big_users,
        "EYP_BATCH__PART_MB": "1",
    }
    command = [sys.executable, "-m", "ey_platform", "batch", "--date", DAY, "--entity", "users"]
    batch = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline:  # workers validating, a part published, one in writing
        workers = descendants(batch.pid)
        if len(workers) >= 4 and parts(data, "users") and parts(data, "users", ".*.tmp"):
            break
        time.sleep(0.02)
    else:
        pytest.fail("the batch never reached its parallel validation")
    batch.send_signal(signal.SIGKILL)
    batch.wait()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []  # workers, fork server and resource tracker died with their parent
    orphans = parts(data, "users")
    assert orphans
    # The part being written, unless the kill fell between a commit and the next part
    # (the sweep itself is also tested on its own in tests/unit/test_lake_local.py).
    leftovers = parts(data, "users", ".*.tmp")
    sizes = {p: p.read_bytes() for p in orphans}

    small = Catalog(n_users=300_000, n_products=5)
    with serve_in_thread(create_app(small)) as url:
        result = cli(data, url, "batch", "--date", DAY, "--entity", "users", "--force")
    assert result.returncode == 0, result.stderr
    assert parts(data, "users", ".*.tmp") == []
    if leftovers:
        assert f"batch.swept_temporaries entity=users files={len(leftovers)}" in result.stderr
    assert f"batch.orphan_parts entity=users day={DAY} parts={len(orphans)}" in result.stderr
    assert {p: p.read_bytes() for p in orphans} == sizes  # published parts are never touched
    runs = rows(data, "SELECT status, error FROM bq_raw._pipeline_runs ORDER BY started_at")
    assert [status for status, _ in runs] == ["abandoned", "loaded"]
    assert "ended before the run did" in runs[0][1]


@pytest.mark.parametrize("how", ["truncated", "not-duckdb"])
def test_a_damaged_warehouse_file_is_named_damaged_at_once(
    fakestore: FakeStore, data: Path, how: str
) -> None:
    assert cli(data, fakestore.url, "batch", "--date", DAY).returncode == 0
    assert cli(data, fakestore.url, "stream", "poll", "--once").returncode == 0
    warehouse = data / "warehouse.duckdb"
    if how == "truncated":
        with warehouse.open("r+b") as f:
            f.truncate(16 << 10)  # past the headers, short of the catalog
    else:
        warehouse.write_bytes(b"this is not a database\n" * 1000)
    for command in (["batch", "--date", DAY], ["stream", "consume", "--drain"]):
        started = time.monotonic()
        line = one_error_line(cli(data, fakestore.url, *command))
        assert time.monotonic() - started < 30  # not the 60 s wait for a busy file
        assert f"DuckDB file {warehouse} is damaged" in line, command
        assert "busy" not in line


def test_a_busy_warehouse_is_still_waited_for_then_named_busy(
    fakestore: FakeStore, data: Path
) -> None:
    assert cli(data, fakestore.url, "batch", "--date", DAY).returncode == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print(1, flush=True); "
            "time.sleep(30)",
            str(data / "warehouse.duckdb"),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline()
        result = cli(
            data, fakestore.url, "batch", "--date", DAY, EYP_WAREHOUSE__DUCKDB__LOCK_TIMEOUT="1"
        )
        line = one_error_line(result)
        assert "is busy for more than 1s" in line and "damaged" not in line
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM bq_raw.users").fetchone() == (10,)
