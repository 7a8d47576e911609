"""Backends for the contract suite: the embedded ones always, the Google ones on their
emulators when ``scripts/emulators.sh run`` started them (``make test`` does).

Each test gets its own bucket, datasets, topic and subscriptions, so tests never see each
other's data. Without emulators the Google half is skipped, or fails when
``EYP_REQUIRE_EMULATORS=1`` (CI), so a CI run can never pass by skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ey_platform.backends import make_bus, make_lake, make_warehouse
from ey_platform.bus.base import Bus, setup_bus
from ey_platform.lake.base import Lake
from ey_platform.settings import Settings, load_settings
from ey_platform.warehouse.base import Warehouse

# Read at import: the autouse clean_environ fixture removes every EYP_ variable.
_ENV_FILE = os.environ.get("EYP_TEST_EMULATOR_ENV")
_REQUIRED = os.environ.get("EYP_REQUIRE_EMULATORS") == "1"

BACKENDS = ["local", "gcp-emulators"]


@pytest.fixture(scope="session")
def emulator_env() -> dict[str, str]:
    """The settings that point the platform at the running emulators."""
    if not _ENV_FILE or not Path(_ENV_FILE).is_file():
        message = "the Google Cloud emulators are not running (make test starts them)"
        if _REQUIRED:
            pytest.fail(f"{message}; EYP_REQUIRE_EMULATORS=1")
        pytest.skip(message)
    env: dict[str, str] = {}
    for line in Path(_ENV_FILE).read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
    return env


@pytest.fixture(params=BACKENDS)
def settings(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Settings:
    """Settings for one backend set, with names no other test uses."""
    monkeypatch.setenv("EYP_DATA_DIR", str(tmp_path / "data"))
    if request.param == "gcp-emulators":
        for key, value in request.getfixturevalue("emulator_env").items():
            monkeypatch.setenv(key, value)
        tag = uuid.uuid4().hex[:10]
        monkeypatch.setenv("EYP_LAKE__GCS__BUCKET", f"eyp-test-{tag}")
        monkeypatch.setenv("EYP_WAREHOUSE__RAW_DATASET", f"raw_{tag}")
        monkeypatch.setenv("EYP_WAREHOUSE__ANALYTICS_DATASET", f"analytics_{tag}")
        monkeypatch.setenv("EYP_BUS__TOPIC", f"events-{tag}")
        monkeypatch.setenv("EYP_BUS__SUBSCRIPTION", f"events-{tag}-sub")
        monkeypatch.setenv("EYP_BUS__DEAD_LETTER_TOPIC", f"events-{tag}-dlq")
    return load_settings()


@pytest.fixture
def lake(settings: Settings) -> Lake:
    made = make_lake(settings)
    made.setup()
    return made


@pytest.fixture
def warehouse(settings: Settings) -> Warehouse:
    made = make_warehouse(settings)
    made.setup()
    return made


@pytest.fixture
def bus(settings: Settings) -> Iterator[Bus]:
    made = make_bus(settings)
    setup_bus(made)
    yield made
    made.close()
