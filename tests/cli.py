"""Running the real command line in a subprocess on a data folder, and reading what it
left in the warehouse file: for the tests that judge the platform as its operators
meet it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb


def cli(data: Path, url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``ey-platform *args`` on ``data`` against the API at ``url``; quick retries."""
    return subprocess.run(
        [sys.executable, "-m", "ey_platform", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={
            **os.environ,
            "EYP_DATA_DIR": str(data),
            "EYP_API_URL": url,
            "EYP_HTTP__MAX_ATTEMPTS": "2",
            "EYP_HTTP__BACKOFF_BASE": "0.01",
            **env,
        },
    )


def rows(data: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line of a command that failed with exit status 1."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]
