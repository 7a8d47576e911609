"""The Dockerfile builds the image the way the Cloud Run jobs need it, checked by reading
it (no Docker engine runs here): a builder stage makes the wheel, the final stage
installs the locked dependencies by hash and that wheel on python:3.13-slim and runs as
a user that is not root; hadolint finds nothing; the build context holds only what the
Dockerfile copies."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = ROOT / ".tools" / "lint" / "bin" / "hadolint"
IN_CI = os.environ.get("CI") == "true"
BUILD_TOOLS = {"gcc", "g++", "make", "build-essential", "cmake", "git", "apt-get", "apk"}


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: comments dropped, continuations joined."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            found.append((keyword.upper(), " ".join(args.split())))
    return found


def _stages() -> list[Stage]:
    stages: list[Stage] = []
    for keyword, args in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            image, *rest = args.split()
            name = rest[1] if len(rest) == 2 and rest[0].upper() == "AS" else None
            stages.append(Stage(image, name))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


@pytest.fixture
def final() -> Stage:
    return _stages()[-1]


def test_the_image_is_python_3_13_slim_run_by_a_user_that_is_not_root(final: Stage) -> None:
    assert final.image == "python:3.13-slim"
    *_, user = final.args_of("USER")
    assert user.split(":")[0] not in {"root", "0"}
    assert final.instructions[-1] == ("CMD", '["--help"]')
    assert final.args_of("ENTRYPOINT") == ['["ey-platform"]']
    words = {word for run in final.args_of("RUN") for word in shlex.split(run)}
    assert not words & BUILD_TOOLS


def _pip_installs(run: str) -> list[list[str]]:
    """The arguments of each `pip install` in one RUN."""
    commands: list[list[str]] = [[]]
    for word in shlex.split(run):
        if word in {"&&", "||", ";"}:
            commands.append([])
        else:
            commands[-1].append(word)
    return [command[2:] for command in commands if command[:2] == ["pip", "install"]]


def test_the_image_installs_the_locked_dependencies_by_hash_then_the_wheel_alone(
    final: Stage,
) -> None:
    text = DOCKERFILE.read_text()
    assert "--editable" not in text and not re.search(r"pip install[^\n]* -e\b", text)
    [install] = [run for run in final.args_of("RUN") if "pip install" in run]
    lock, wheel = _pip_installs(install)
    # Every file checked against the lock's hashes, binary wheels only (no compiler), and
    # nothing resolved beyond the lock: the gcp extra's packages are in it.
    assert {"--require-hashes", "--no-deps", "--only-binary", ":all:"} <= set(lock)
    assert lock[lock.index("-r") + 1] == "/wheels/requirements.lock"
    assert wheel == ["--no-deps", "/wheels/ey_platform-*.whl"]
    assert "pip check" in install
    for copy in final.args_of("COPY") + final.args_of("ADD"):
        assert copy.startswith("--from="), f"the final stage copies from the context: {copy}"
    assert not any(re.search(r"\b(src|dbt)\b", copy) for copy in final.args_of("COPY"))


def test_the_builder_takes_its_build_backend_from_the_lock(final: Stage) -> None:
    [builder] = [stage for stage in _stages() if stage.name == "builder"]
    copied = {word for copy in builder.args_of("COPY") for word in copy.split()[:-1]}
    assert "requirements.lock" in copied
    [build] = [run for run in builder.args_of("RUN") if "pip wheel" in run]
    [backend] = _pip_installs(build)
    assert {"--require-hashes", "--no-deps"} <= set(backend)
    assert "--no-build-isolation" in build and "/^setuptools==/" in build


def test_the_build_context_is_only_what_the_dockerfile_copies() -> None:
    """No .env, local data, virtualenv or Terraform state reaches the builder."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {"requirements.lock", "pyproject.toml", "README.md", "src"}
    [builder] = [stage for stage in _stages() if stage.name == "builder"]
    sources = {word for copy in builder.args_of("COPY") for word in copy.split()[:-1]}
    assert sources == allowed


def test_make_lint_runs_hadolint_and_the_dockerfile_passes_it() -> None:
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile[makefile.index("\nlint:") : makefile.index("\nformat:")]
    assert "hadolint Dockerfile" in lint
    if not HADOLINT.exists():
        if IN_CI:
            pytest.fail(f"no hadolint at {HADOLINT}: make test installs it")
        pytest.skip(f"no hadolint at {HADOLINT} (make lint installs it)")
    done = subprocess.run(
        [str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


def test_a_builder_stage_makes_the_wheel_the_image_installs(final: Stage) -> None:
    *builders, _ = _stages()
    [builder] = [stage for stage in builders if stage.name == "builder"]
    assert any(re.search(r"pip wheel|-m build", run) for run in builder.args_of("RUN"))
    assert any("from=builder" in arg for arg in final.args_of("RUN") + final.args_of("COPY"))
