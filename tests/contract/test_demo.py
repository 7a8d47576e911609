"""`make demo-gcp` prints what `make demo` prints: the same job through the production
backends (on their emulators) reaches the same figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _summary(tmp_path: Path, extra_env: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EYP_")}
    env |= {"EYP_DATA_DIR": str(tmp_path / "data"), **extra_env}
    done = subprocess.run(
        [sys.executable, "-m", "ey_platform", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout[done.stdout.index("Rows at every layer") :]


def test_the_demo_on_the_emulators_prints_the_local_figures(
    tmp_path: Path, emulator_env: dict[str, str]
) -> None:
    local = _summary(tmp_path / "local", {})
    assert "reconciled" in local and "total" in local
    assert _summary(tmp_path / "gcp", emulator_env) == local
