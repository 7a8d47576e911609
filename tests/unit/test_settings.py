"""Settings: names, defaults, nesting, masking."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from ey_platform.errors import ConfigError
from ey_platform.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def _env_names(model: type[BaseModel], prefix: str = "EYP_") -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names |= _env_names(kind, f"{prefix}{name.upper()}__")
        else:
            names.add(f"{prefix}{name.upper()}")
    return names


def test_env_example_lists_every_setting() -> None:
    listed = set(re.findall(r"^(EYP_[A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert listed == _env_names(Settings)


def test_every_setting_is_described() -> None:
    def undescribed(model: type[BaseModel]) -> list[str]:
        return [n for n, f in model.model_fields.items() if not f.description]

    nested = [f.annotation for f in Settings.model_fields.values()]
    models = [Settings, *(m for m in nested if isinstance(m, type) and issubclass(m, BaseModel))]
    assert len(models) == 8
    assert {m.__name__: undescribed(m) for m in models if undescribed(m)} == {}


def test_defaults_derive_local_paths_from_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EYP_DATA_DIR", "/srv/eyp")
    settings = load_settings()
    assert settings.profile == "local"
    assert settings.duckdb_path == Path("/srv/eyp/warehouse.duckdb")
    assert settings.lake_root == Path("/srv/eyp/lake")
    assert settings.bus_path == Path("/srv/eyp/bus.sqlite3")


def test_nested_variables_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("EYP_HTTP__READ_TIMEOUT=3\nEYP_PROFILE=\nEYP_API_TOKEN=t0k\n")
    monkeypatch.setenv("EYP_BUS__TOPIC", "other")
    settings = load_settings()
    assert settings.http.read_timeout == 3
    assert settings.bus.topic == "other"
    assert settings.profile == "local"  # blank means default
    assert settings.masked()["api_token"] == "**********"
    assert "t0k" not in repr(settings)


def test_a_cli_override_wins_and_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EYP_API_URL", "http://127.0.0.1:1/")
    assert load_settings(api_url="http://127.0.0.1:2").api_url == "http://127.0.0.1:2"
    assert load_settings().api_url == "http://127.0.0.1:1"
    monkeypatch.setenv("EYP_WAREHOUSE__LOCK_TIMEOUT", "-1")
    with pytest.raises(ConfigError, match="EYP_WAREHOUSE__LOCK_TIMEOUT: Input should be greater"):
        load_settings()


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    assert set(re.findall(r"^\| `(EYP_[A-Z_]+)` \|", readme, re.M)) == _env_names(Settings)


def test_readme_shows_the_architecture_file() -> None:
    diagram = (ROOT / "docs" / "architecture.mmd").read_text().strip()
    assert f"```mermaid\n{diagram}\n```" in (ROOT / "README.md").read_text()
