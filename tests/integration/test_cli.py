"""The command line: one clear line per error, secrets never printed."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.conftest import FakeStore


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

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
    ],
    ids=["profile", "nested", "url", "faults", "gcp-project"],
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
