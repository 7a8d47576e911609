"""The Dockerfile builds the image the way the Cloud Run jobs need it, checked by reading
it (no Docker engine runs here): a builder stage makes the wheel, the final stage
installs only that wheel on python:3.13-slim and runs as a user that is not root."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"
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


def test_the_image_installs_the_wheel_with_the_gcp_extra_and_no_source(final: Stage) -> None:
    text = DOCKERFILE.read_text()
    assert "--editable" not in text and not re.search(r"pip install[^\n]* -e\b", text)
    [install] = [run for run in final.args_of("RUN") if "pip install" in run]
    assert re.search(r"\.whl\)?\[gcp\]", install)
    for copy in final.args_of("COPY") + final.args_of("ADD"):
        assert copy.startswith("--from="), f"the final stage copies from the context: {copy}"
    assert not any(re.search(r"\b(src|dbt)\b", copy) for copy in final.args_of("COPY"))


def test_a_builder_stage_makes_the_wheel_the_image_installs(final: Stage) -> None:
    *builders, _ = _stages()
    [builder] = [stage for stage in builders if stage.name == "builder"]
    assert any(re.search(r"pip wheel|-m build", run) for run in builder.args_of("RUN"))
    assert any("from=builder" in arg for arg in final.args_of("RUN") + final.args_of("COPY"))
