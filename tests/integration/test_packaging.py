"""The package as it ships: a wheel, installed (not editable) into a fresh virtualenv,
runs the platform, the dbt project included, and dbt writes nothing into it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "src" / "ey_platform" / "dbt"
# What a developer's own dbt run leaves in the project, and the wheel must not ship.
BUILD_OUTPUT = ("target/manifest.json", "logs/dbt.log", "dbt_packages/x/a.yml", ".user.yml")
PIP = (sys.executable, "-m", "pip", "--quiet", "--no-input")
# Offline: no index, no dependency (this environment's serve the wheel's).
OFFLINE = ("--no-index", "--no-deps")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of a copy of the source tree (the checkout gets no build/), built by this
    interpreter's setuptools without reaching an index."""
    tree = tmp_path_factory.mktemp("tree")
    shutil.copy(ROOT / "pyproject.toml", tree)
    shutil.copy(ROOT / "README.md", tree)
    shutil.copytree(
        ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for stray in BUILD_OUTPUT:
        (tree / "src/ey_platform/dbt" / stray).parent.mkdir(parents=True, exist_ok=True)
        (tree / "src/ey_platform/dbt" / stray).write_text("{}")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [*PIP, "wheel", *OFFLINE, "--no-build-isolation", "--wheel-dir", str(out), str(tree)],
        check=True,
        timeout=240,
    )
    [built] = out.glob("ey_platform-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding the wheel, and this environment's packages for its
    dependencies: a .pth names our site-packages, whose own .pth files (the editable
    install's among them) are not read that way, so ``ey_platform`` is the wheel's."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [*PIP, "--python", str(venv / "bin" / "python"), "install", *OFFLINE, str(wheel)],
        check=True,
        timeout=240,
    )
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (_site_packages(venv) / "eyp-test-dependencies.pth").write_text("\n".join(sorted(ours)))
    return venv


def _site_packages(venv: Path) -> Path:
    [site] = (venv / "lib").glob("python3.*/site-packages")
    return site


def _installed_project(venv: Path) -> Path:
    return _site_packages(venv) / "ey_platform" / "dbt"


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def _env() -> dict[str, str]:
    """No PYTHONPATH (it would come before the wheel); dbt asked for usage statistics,
    whose cookie it would write into the profiles directory, that is the project."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "true"}


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "ey-platform"), *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        env=_env(),
    )


def test_the_wheel_holds_the_dbt_project_and_none_of_its_build_output(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = {n for n in archive.namelist() if not n.endswith("/")}
    prefix = "ey_platform/dbt/"
    shipped = {n.removeprefix(prefix) for n in names if n.startswith(prefix)}
    sources = {
        str(p.relative_to(PROJECT))
        for folder in ("models", "macros", "snapshots", "tests")
        for p in (PROJECT / folder).rglob("*")
        if p.is_file()
    }
    assert {"dbt_project.yml", "profiles.yml"} | sources == shipped
    assert {s.split("/")[0] for s in sources} == {"models", "macros", "snapshots", "tests"}
    parts = {part for name in names for part in name.split("/")}
    assert not parts & {"target", "logs", "dbt_packages", ".user.yml"}


def test_the_virtualenv_imports_the_wheel_not_the_source_tree(venv: Path) -> None:
    probe = "import ey_platform.transform as t; print(t.__file__); print(t.DBT_PROJECT)"
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env=_env(),
    )
    module, project = map(Path, result.stdout.splitlines())
    assert module.is_relative_to(_site_packages(venv))
    assert project == _installed_project(venv) and (project / "dbt_project.yml").is_file()


def test_the_installed_wheel_runs_the_demo_and_dbt_leaves_its_project_as_it_was(
    venv: Path, tmp_path: Path
) -> None:
    project = _installed_project(venv)
    before = _tree(project)
    result = _run(venv, "demo", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Rows at every layer" in result.stdout
    assert "in fact_orders: reconciled" in result.stdout
    assert "Revenue by category" in result.stdout
    assert _tree(project) == before
    assert (tmp_path / "data" / "dbt" / "target" / "partial_parse.msgpack").is_file()


@pytest.fixture
def read_only_project(venv: Path) -> Iterator[Path]:
    """The installed dbt project on a read-only bind mount, as in the image."""
    project = _installed_project(venv)
    assert project.is_dir(), f"no dbt project in the wheel at {project}"
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    mounted = subprocess.run(["mount", "--bind", str(project), str(project)], check=False)
    if mounted.returncode != 0:
        pytest.skip("mount is not permitted here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(project)], check=True)
        yield project
    finally:
        subprocess.run(["umount", "-l", str(project)], check=True)


def test_dbt_needs_no_write_access_to_the_installed_project(
    venv: Path, read_only_project: Path, tmp_path: Path
) -> None:
    with pytest.raises(OSError, match="Read-only file system"):
        (read_only_project / "probe").write_text("")
    result = _run(venv, "docs", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "data" / "dbt" / "target" / "static_index.html").stat().st_size > 100_000
