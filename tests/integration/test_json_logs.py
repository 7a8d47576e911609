"""Under EYP_LOG__FORMAT=json (or profile gcp) every line the CLI writes on stderr is a
JSON object with a severity, as Cloud Logging parses it: the real command, as a
subprocess, against the bundled server on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import FakeStore
from tests.integration.test_cli import run

SEVERITIES = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def _records(stderr: str) -> list[dict[str, Any]]:
    """Each line of ``stderr`` as JSON; fails on the first line that is not."""
    lines = stderr.splitlines()
    assert lines, "nothing on stderr"
    records = []
    for line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict) and record.get("severity") in SEVERITIES, line
        records.append(record)
    return records


@pytest.mark.slow
def test_every_stderr_line_of_batch_is_json_when_it_succeeds_and_fails(
    fakestore: FakeStore, tmp_path: Path
) -> None:
    batch = ["batch", "--api-url", fakestore.url, "--data-dir", str(tmp_path / "data")]
    env = {"EYP_LOG__FORMAT": "json", "EYP_HTTP__MAX_ATTEMPTS": "1"}
    good = run(*batch, "--date", "2026-12-01", env=env)
    assert good.returncode == 0, good.stderr
    records = _records(good.stderr)
    assert {r["job"] for r in records} == {"batch"}  # every line names the job
    done = [r for r in records if r["message"] == "batch.done"]
    assert {r["entity"] for r in done} == {"products", "users"}
    assert all(r["run_id"] and r["severity"] == "INFO" for r in done)
    assert "│ users" in good.stdout  # the table still goes to stdout

    fakestore.faults("error=1.0")
    bad = run(*batch, "--date", "2026-12-02", env=env)
    assert bad.returncode == 1
    records = _records(bad.stderr)
    (error,) = [r for r in records if r["message"] == "error"]
    assert error["severity"] == "ERROR" and error["job"] == "batch"
    assert error["error"].startswith(f"{fakestore.url}: GET /products failed after 1 attempts")
    assert records[-1] is error and "stack_trace" not in error


def test_the_profile_flag_alone_turns_json_on_before_the_settings_are_read() -> None:
    failed = run("--profile", "gcp", "batch")
    assert failed.returncode == 2
    (record,) = _records(failed.stderr)
    assert record["severity"] == "ERROR" and record["message"] == "error"
    assert "EYP_GCP__PROJECT: required with profile gcp" in record["error"]


def test_a_dotenv_turns_json_on_for_the_settings_own_warnings(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("EYP_LOG__FORMAT=json\nEYP_PROFILEE=gcp\n")
    result = run("config")
    assert result.returncode == 0, result.stderr
    (record,) = _records(result.stderr)
    assert record["severity"] == "WARNING" and record["job"] == "config"
    assert record["message"] == "EYP_PROFILEE in .env is not a setting; did you mean EYP_PROFILE?"


def test_under_json_debug_puts_the_traceback_in_the_error_record() -> None:
    from ey_platform.source.server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = run(
        "--debug",
        "fetch",
        "--api-url",
        url,
        env={"EYP_LOG__FORMAT": "json", "EYP_HTTP__MAX_ATTEMPTS": "1"},
    )
    assert result.returncode == 1
    error = _records(result.stderr)[-1]
    assert error["message"] == "error" and error["job"] == "fetch"
    assert error["stack_trace"].startswith("Traceback (most recent call last):")
    assert "SourceUnavailable" in error["stack_trace"]
