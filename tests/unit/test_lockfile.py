"""requirements.lock is in sync with pyproject.toml: every dependency and every package of
the `gcp` extra is pinned at a version pyproject allows, for each Python from 3.11 to
3.13, every pin has its hashes, and every pin is there because something asks for it.

The check reads the lock's own annotations (`# via`), written by `make lock`
(scripts/lock.sh, uv's universal resolution), so it needs no index and no resolver."""

from __future__ import annotations

import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
# What uv writes for a requirement of the project itself.
PROJECT_ROOT = "ey-platform (pyproject.toml)"
PYTHONS = ("3.11", "3.12", "3.13")
EXTRAS = ("gcp",)  # the image's extra; dev and bench are not the product's


@dataclass
class Pin:
    name: str
    version: str
    marker: str | None = None
    hashes: list[str] = field(default_factory=list)
    via: set[str] = field(default_factory=set)

    def applies(self, python: str) -> bool:
        return self.marker is None or Marker(self.marker).evaluate(_environment(python))


def _environment(python: str) -> dict[str, str]:
    """The image's platform (Linux x86_64, CPython) on one Python."""
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }


PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;(?P<marker>[^\\]+))?"
)
HASH = re.compile(r"^\s+--hash=sha256:(?P<hex>[0-9a-f]{64})\b")
VIA = re.compile(r"^\s+# via(?: (?P<one>.+))?$")
VIA_MORE = re.compile(r"^\s+#   (?P<name>.+)$")


def parse_lock(text: str) -> list[Pin]:
    pins: list[Pin] = []
    for line in text.splitlines():
        if found := PIN.match(line):
            marker = (found["marker"] or "").strip() or None
            pins.append(Pin(canonicalize_name(found["name"]), found["version"], marker))
        elif pins and (found := HASH.match(line)):
            pins[-1].hashes.append(found["hex"])
        elif pins and (found := VIA.match(line)):
            if found["one"]:
                pins[-1].via.add(_requirer(found["one"]))
        elif pins and (found := VIA_MORE.match(line)):
            pins[-1].via.add(_requirer(found["name"]))
    return pins


def _requirer(text: str) -> str:
    text = text.strip()
    return text if text == PROJECT_ROOT else str(canonicalize_name(text))


def _roots(pyproject: dict[str, Any]) -> list[Requirement]:
    project = pyproject["project"]
    wanted = list(project["dependencies"])
    for extra in EXTRAS:
        wanted += project["optional-dependencies"][extra]
    return [Requirement(spec) for spec in wanted]


def problems(pyproject: dict[str, Any], pins: list[Pin]) -> list[str]:
    """Every way the lock disagrees with pyproject.toml, one sentence each."""
    found: list[str] = []
    by_name: dict[str, list[Pin]] = {}
    for pin in pins:
        by_name.setdefault(pin.name, []).append(pin)
    roots = {str(canonicalize_name(req.name)): req for req in _roots(pyproject)}
    for name, req in roots.items():
        for python in PYTHONS:
            applying = [p for p in by_name.get(name, []) if p.applies(python)]
            if len(applying) != 1:
                found.append(f"{name} ({req}) has {len(applying)} pins for Python {python}")
            found += [
                f"{name}=={p.version} does not satisfy pyproject's {req}"
                for p in applying
                if p.version not in req.specifier
            ]
    for pin in pins:
        if not pin.hashes:
            found.append(f"{pin.name}=={pin.version} has no hash")
        if (PROJECT_ROOT in pin.via) != (pin.name in roots):
            found.append(f"{pin.name} is a direct dependency in one of lock and pyproject only")
        found += [
            f"{pin.name} is pinned for {via}, which the lock does not hold"
            for via in pin.via - {PROJECT_ROOT}
            if via not in by_name
        ]
    found += [f"nothing requires {name}" for name in sorted(set(by_name) - _reachable(pins, roots))]
    return found


def _reachable(pins: list[Pin], roots: dict[str, Requirement]) -> set[str]:
    required_by: dict[str, set[str]] = {}
    for pin in pins:
        for via in pin.via:
            required_by.setdefault(via, set()).add(pin.name)
    seen, todo = set(), [name for name in roots if name in {p.name for p in pins}]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += required_by.get(name, set())
    return seen


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text())


@pytest.fixture(scope="module")
def pins() -> list[Pin]:
    return parse_lock(LOCK.read_text())


def test_the_lock_pins_what_pyproject_asks_for_and_nothing_else(
    pyproject: dict[str, Any], pins: list[Pin]
) -> None:
    assert problems(pyproject, pins) == [], "requirements.lock is out of date: run make lock"
    names = {pin.name for pin in pins}
    assert {"dbt-core", "dbt-bigquery", "google-cloud-bigquery", "duckdb"} <= names
    assert not names & {"pytest", "mypy", "ruff", "python-hcl2", "dlt"}  # dev and bench


def test_the_check_finds_a_dependency_the_lock_lacks_or_pins_outside_its_range(
    pyproject: dict[str, Any], pins: list[Pin]
) -> None:
    changed = {**pyproject, "project": {**pyproject["project"]}}
    changed["project"]["dependencies"] = [
        *(spec for spec in pyproject["project"]["dependencies"] if not spec.startswith("duckdb")),
        "duckdb>=99",
        "boto3>=1.30",
    ]
    found = problems(changed, pins)
    assert any(p.startswith("boto3 (boto3>=1.30) has 0 pins for Python 3.11") for p in found)
    assert any(re.match(r"duckdb==\S+ does not satisfy pyproject's duckdb>=99", p) for p in found)


def test_the_check_finds_a_pin_nothing_asks_for(pyproject: dict[str, Any], pins: list[Pin]) -> None:
    stray = Pin("leftpad", "1.0", hashes=["0" * 64], via={"left-pad-user"})
    dev_tool = Pin("pytest", "9.0", hashes=["0" * 64], via={PROJECT_ROOT})
    unhashed = Pin("requests", "2.0", via={"google-api-core"})
    found = problems(pyproject, [*pins, stray, dev_tool, unhashed])
    assert "nothing requires leftpad" in found
    assert "leftpad is pinned for left-pad-user, which the lock does not hold" in found
    assert "pytest is a direct dependency in one of lock and pyproject only" in found
    assert "requests==2.0 has no hash" in found


def test_the_lock_holds_the_build_backend_the_image_builds_the_wheel_with(
    pyproject: dict[str, Any], pins: list[Pin]
) -> None:
    [backend] = [Requirement(r) for r in pyproject["build-system"]["requires"]]
    [setuptools] = [p for p in pins if p.name == canonicalize_name(backend.name)]
    assert setuptools.marker is None and setuptools.version in backend.specifier


def test_the_lock_is_written_by_make_lock() -> None:
    header = LOCK.read_text().splitlines()[:2]
    assert header == [
        "# This file was autogenerated by uv via the following command:",
        "#    make lock",
    ]
    script = (ROOT / "scripts" / "lock.sh").read_text()
    for option in ("--universal", "--generate-hashes", "--extra gcp", "--only-binary :all:"):
        assert option in script


def test_the_virtualenv_runs_the_locked_versions(pins: list[Pin]) -> None:
    """make setup installs with the lock as constraints: the suite tests what ships."""
    python = "{}.{}".format(*sys.version_info[:2])
    differ = []
    for pin in pins:
        if pin.applies(python):
            try:
                installed = metadata.version(pin.name)
            except metadata.PackageNotFoundError:
                installed = "nothing"
            if installed != pin.version:
                differ.append(f"{pin.name} {installed} (locked {pin.version})")
    if differ and os.environ.get("CI") != "true":
        pytest.skip(f"this virtualenv predates the lock (make setup reinstalls it): {differ[:5]}")
    assert differ == []
