"""`stream status` only reads: it creates nothing in a fresh data folder and works in a
read-only one (a real read-only mount)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FakeStore
from tests.integration.test_guards import cli


def status_facts(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    facts = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 2 and cells[0]:
            facts[cells[0]] = cells[1]
    return facts


def test_status_of_a_fresh_folder_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    facts = status_facts(cli(data, "http://127.0.0.1:9", "stream", "status"))
    assert facts["bus"].startswith("none yet")
    assert facts["last poll"] == "none yet"
    assert facts["throughput, last 5 min"].startswith("n/a (no warehouse at")
    assert not data.exists()


@pytest.fixture
def read_only_copy(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/ro``: a read-only bind mount of ``tmp_path/rw``."""
    if os.geteuid() != 0:
        pytest.skip("a read-only mount needs root")
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(rw), str(ro)], check=False).returncode:
        pytest.skip("mounting is not permitted here")
    try:
        yield ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_status_reads_a_read_only_folder(fakestore: FakeStore, read_only_copy: Path) -> None:
    rw = read_only_copy.parent / "rw" / "data"
    assert cli(rw, fakestore.url, "stream", "poll", "--once").returncode == 0
    assert cli(rw, fakestore.url, "stream", "consume", "--drain").returncode == 0
    assert cli(rw, fakestore.url, "stream", "poll", "--once").returncode == 0  # 0 new
    remount = ["mount", "-o", "remount,bind,ro", str(read_only_copy)]
    subprocess.run(remount, check=True)
    before = sorted(p.name for p in rw.rglob("*"))
    facts = status_facts(cli(read_only_copy / "data", fakestore.url, "stream", "status"))
    assert facts["backlog (unacked)"] == "0"
    assert facts["dead letters"] == "0"
    assert "succeeded: 7 carts, +0 ~0 -0" in facts["last poll"]
    assert facts["throughput, last 5 min"].endswith("events/s")
    assert sorted(p.name for p in rw.rglob("*")) == before
