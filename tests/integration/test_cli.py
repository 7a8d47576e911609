"""The command line: one clear line per error, secrets never printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import orjson
import pytest

from ey_platform.source.data import Catalog
from ey_platform.source.server import create_app, serve_in_thread
from tests.conftest import FakeStore


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ey_platform", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("ey-platform ")


def test_config_masks_secrets_and_shows_overrides() -> None:
    result = run("config", "--api-url", "http://127.0.0.1:9", env={"EYP_API_TOKEN": "s3cr3t-v"})
    assert result.returncode == 0, result.stderr
    assert "s3cr3t-v" not in result.stdout + result.stderr
    shown = orjson.loads(result.stdout)
    assert shown["api_token"] == "**********"
    assert shown["api_url"] == "http://127.0.0.1:9"
    assert shown["bus"]["topic"] == "carts-events"


def test_the_profile_flag_moves_every_setting_read() -> None:
    result = run("--profile", "gcp", "config")
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["profile"] == "gcp"


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["config"], {"EYP_PROFILE": "aws"}, "EYP_PROFILE: Input should be 'local' or 'gcp'"),
        (["config"], {"EYP_HTTP__MAX_ATTEMPTS": "0"}, "EYP_HTTP__MAX_ATTEMPTS"),
        (["config", "--api-url", "ftp://x"], {}, "EYP_API_URL: Value error, must start with"),
        (["fakestore", "serve", "--faults", "boom=1"], {}, "--faults: fault 'boom=1'"),
        (["--profile", "gcp", "batch"], {}, "EYP_GCP__PROJECT: required with profile gcp"),
        (["config"], {"EYP_HTTP": "{not json"}, "EYP_HTTP: not valid JSON (Expecting property"),
        (
            ["config"],
            {"EYP_BATCH__MIN_ROWS_FRACTION": "2"},
            "EYP_BATCH__MIN_ROWS_FRACTION: Input should be less than or equal to 1",
        ),
        (
            ["config"],
            {"EYP_STREAM__MAX_DELETE_FRACTION": "0"},
            "EYP_STREAM__MAX_DELETE_FRACTION: Input should be greater than 0",
        ),
        (["stream", "poll", "--allow-mass-delete"], {}, "--allow-mass-delete needs --once"),
    ],
    ids=[
        "profile",
        "nested",
        "url",
        "faults",
        "gcp-project",
        "section-not-json",
        "min-rows-fraction",
        "max-delete-fraction",
        "mass-delete-needs-once",
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(
    args: list[str], env: dict[str, str], needle: str
) -> None:
    result = run(*args, env=env)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_api_is_one_line_and_exit_1() -> None:
    from ey_platform.source.server import free_port

    env = {"EYP_HTTP__MAX_ATTEMPTS": "1"}
    result = run("fetch", "--api-url", f"http://127.0.0.1:{free_port()}", env=env)
    assert result.returncode == 1
    assert "error: http://127.0.0.1" in result.stderr and "failed after 1 attempts" in result.stderr
    assert "Traceback" not in result.stderr


def test_fetch_against_the_bundled_server(fakestore: FakeStore) -> None:
    result = run("fetch", "--api-url", fakestore.url)
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "20" in rows["products"] and "10" in rows["users"] and "7" in rows["carts"]


def test_config_shows_the_default_paths_resolved(tmp_path: Path) -> None:
    result = run("config", "--data-dir", "relative")
    assert result.returncode == 0, result.stderr
    shown = orjson.loads(result.stdout)
    data = tmp_path.resolve() / "relative"
    assert shown["data_dir"] == str(data)
    assert shown["lake"]["local"]["root"] == str(data / "lake")
    assert shown["warehouse"]["duckdb"]["path"] == str(data / "warehouse.duckdb")
    assert shown["bus"]["sqlite"]["path"] == str(data / "bus.sqlite3")
    assert shown["poller_state_path"] == str(data / "stream" / "poller.sqlite3")


def test_a_dotenv_section_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("EYP_BUS={topic: x}\n")
    result = run("config")
    assert result.returncode == 2
    assert result.stderr.startswith("error: invalid configuration: EYP_BUS in .env: not valid JSON")
    assert len(result.stderr.strip().splitlines()) == 1 and "{topic" not in result.stderr


def test_a_misspelt_variable_is_one_warning_line_and_keeps_the_exit_code(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("EYP_PROFILEE=gcp\nCOMPOSE_PROJECT_NAME=shop\n")
    platform_own = {"EYP_DBT_TARGET": "local", "EYP_REQUIRE_EMULATORS": "1"}
    result = run("config", env={"EYP_HTTP__MAX_ATEMPTS": "3", **platform_own})
    assert result.returncode == 0, result.stderr
    assert [line.split(" ", 3)[1:] for line in result.stderr.splitlines()] == [
        [
            "WARNING",
            "ey_platform.settings",
            "EYP_HTTP__MAX_ATEMPTS is not a setting; did you mean EYP_HTTP__MAX_ATTEMPTS?",
        ],
        [
            "WARNING",
            "ey_platform.settings",
            "EYP_PROFILEE in .env is not a setting; did you mean EYP_PROFILE?",
        ],
    ]
    assert orjson.loads(result.stdout)["http"]["max_attempts"] == 5


def _products(data: Path, day: str) -> int:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        (count,) = con.execute(  # type: ignore[misc]
            "SELECT count(*) FROM bq_raw.products WHERE _ingestion_date = ?", [day]
        ).fetchone()
    return int(count)


@pytest.mark.slow
def test_a_held_batch_exits_1_naming_it_and_force_loads_it(
    fakestore: FakeStore, tmp_path: Path
) -> None:
    data, day = tmp_path / "data", "2026-11-26"
    batch = ["batch", "--data-dir", str(data), "--date", day, "--api-url"]
    assert run(*batch, fakestore.url).returncode == 0
    with serve_in_thread(create_app(Catalog(n_products=5))) as shrunk:
        held = run(*batch, shrunk)
        assert held.returncode == 1, held.stderr
        errors = [line for line in held.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in held.stderr
        assert errors[0].startswith(f"error: batch held: products {day}: ")
        assert errors[0].endswith("; rerun with --force to load it anyway")
        assert "users" not in errors[0]
        assert re.search(r"│ products +│ held +│ 5 ", held.stdout)  # the table came first
        # Not a terminal: no bar, the plain log lines.
        assert "\x1b[" not in held.stderr and "records/s" not in held.stderr
        assert re.search(
            r"^\S+ INFO ey_platform\.batch batch\.done entity=users", held.stderr, re.M
        )
        assert _products(data, day) == 20
        forced = run(*batch, shrunk, "--force")
        assert forced.returncode == 0, forced.stderr
        assert re.search(r"│ products +│ loaded +│ 5 ", forced.stdout)
    assert _products(data, day) == 5


@pytest.mark.slow
def test_the_batch_guard_follows_its_setting(fakestore: FakeStore, tmp_path: Path) -> None:
    data, day = tmp_path / "data", "2026-11-26"
    batch = ["batch", "--entity", "products", "--data-dir", str(data), "--date", day, "--api-url"]
    assert run(*batch, fakestore.url).returncode == 0
    with serve_in_thread(create_app(Catalog(n_products=5))) as shrunk:  # a quarter of 20
        held = run(*batch, shrunk, env={"EYP_BATCH__MIN_ROWS_FRACTION": "0.3"})
        assert held.returncode == 1 and "error: batch held: products" in held.stderr
        loaded = run(*batch, shrunk, env={"EYP_BATCH__MIN_ROWS_FRACTION": "0.2"})
    assert loaded.returncode == 0, loaded.stderr
    assert _products(data, day) == 5


def _poll(url: str, data: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run(
        "stream", "poll", "--once", "--api-url", url, "--data-dir", str(data), *extra, env=env
    )


@pytest.mark.slow
def test_a_poll_deleting_most_carts_fails_unless_allowed(tmp_path: Path) -> None:
    strict, lenient = tmp_path / "strict", tmp_path / "lenient"
    with serve_in_thread(create_app(Catalog(n_carts=7))) as url:
        assert _poll(url, strict).returncode == 0 and _poll(url, lenient).returncode == 0
    with serve_in_thread(create_app(Catalog(n_carts=0))) as emptied:
        refused = _poll(emptied, strict)
        assert refused.returncode == 1
        (error,) = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
        assert "EYP_STREAM__MAX_DELETE_FRACTION=0.5" in error and "--allow-mass-delete" in error
        assert _poll(emptied, strict, "--allow-mass-delete").returncode == 0
        accepted = _poll(emptied, lenient, EYP_STREAM__MAX_DELETE_FRACTION="1")
        assert accepted.returncode == 0, accepted.stderr


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mounts a real tmpfs (full, or read-only) under tmp_path; always unmounted."""
    mounted: list[Path] = []

    def mount(name: str, *, full: bool = False, read_only: bool = False) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)])
        if done.returncode != 0:
            pytest.skip("mount is not permitted here")
        mounted.append(point)
        if full:
            subprocess.run(
                ["dd", "if=/dev/zero", f"of={point / 'filler'}", "bs=64k"], capture_output=True
            )
            assert os.statvfs(point).f_bavail == 0
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "reason"),
    [("full", "No space left on device"), ("read_only", "Read-only file system")],
)
def test_a_disk_error_is_one_line_naming_the_place(
    fakestore: FakeStore, tmpfs: Callable[..., Path], kind: str, reason: str
) -> None:
    point = tmpfs("disk", **{kind: True})
    data = point / "data"
    result = run("batch", "--api-url", fakestore.url, env={"EYP_DATA_DIR": str(data)})
    assert result.returncode == 1
    (last,) = result.stderr.strip().splitlines()[-1:]
    assert re.fullmatch(rf"error: cannot write (under )?{re.escape(str(data))}\S*: {reason}", last)
    assert "Traceback" not in result.stderr
    debug = run("--debug", "batch", "--api-url", fakestore.url, env={"EYP_DATA_DIR": str(data)})
    assert debug.returncode == 1 and "Traceback" in debug.stderr and reason in debug.stderr
