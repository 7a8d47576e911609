"""Settings: names, defaults, nesting, masking."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, TypeAdapter

from ey_platform.errors import ConfigError
from ey_platform.settings import Settings, load_settings, unknown_variables

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
    assert len(models) == 11
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


# Names the tests below misspell on purpose; every other EYP_ name in the repository must
# be known (test_every_eyp_name_in_the_repository_is_known).
DELIBERATE_TYPOS = {
    "EYP_HTTP__MAX_ATEMPTS",
    "EYP_HTP__MAX_ATTEMPTS",
    "EYP_PROFILEE",
    "EYP_BUS__TOPICC",
    "EYP_STREAM__BATCHSIZE",
    "EYP_NOTHING_LIKE_IT",
}


def _default(info: Any) -> str:
    """A field's default as the README table shows it: JSON in backquotes, or blank."""
    value = TypeAdapter(info.annotation).dump_python(info.get_default(), mode="json")
    return "" if value is None else f"`{orjson.dumps(value).decode().strip(chr(34))}`"


def _leaves(model: type[BaseModel], prefix: str = "EYP_") -> Iterator[tuple[str, Any]]:
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _leaves(kind, f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}", info


def test_readme_configuration_table_shows_each_default_and_description() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Configuration") : readme.index("## Command line")]
    rows = {
        name: (default, meaning)
        for name, default, meaning in re.findall(
            r"^\| `(EYP_\w+)` \| (.*?) \| (.*) \|$", section, re.M
        )
    }
    expected = {
        name: (_default(info), html.escape(info.description, quote=False))
        for name, info in _leaves(Settings)
    }
    assert rows == expected


def test_the_guards_settings_default_to_one_half_and_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings()
    assert settings.batch.min_rows_fraction == 0.5
    assert settings.stream.max_delete_fraction == 0.5
    monkeypatch.setenv("EYP_BATCH__MIN_ROWS_FRACTION", "0")  # 0 turns the guard off
    monkeypatch.setenv("EYP_STREAM__MAX_DELETE_FRACTION", "1")
    assert load_settings().batch.min_rows_fraction == 0
    for name, bad in [
        ("EYP_BATCH__MIN_ROWS_FRACTION", "1.5"),
        ("EYP_STREAM__MAX_DELETE_FRACTION", "0"),
    ]:
        monkeypatch.setenv(name, bad)
        with pytest.raises(ConfigError, match=name):
            load_settings()
        monkeypatch.delenv(name)


@pytest.mark.parametrize("in_dotenv", [False, True], ids=["environment", "dotenv"])
def test_a_section_that_is_not_json_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, in_dotenv: bool
) -> None:
    if in_dotenv:
        (tmp_path / ".env").write_text("EYP_HTTP={not json\n")
    else:
        monkeypatch.setenv("EYP_HTTP", "{not json")
    where = " in .env" if in_dotenv else ""
    with pytest.raises(
        ConfigError, match=f"^invalid configuration: EYP_HTTP{where}: not valid JSON"
    ):
        load_settings()


def test_a_dotenv_may_hold_other_tools_variables_but_must_be_utf8(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("COMPOSE_PROJECT_NAME=shop\nEYP_BUS__TOPIC=t\n")
    assert load_settings().bus.topic == "t"
    (tmp_path / ".env").write_bytes(b"EYP_BUS__TOPIC=\xff\n")
    with pytest.raises(ConfigError, match=r"\.env: not UTF-8 text \(byte 15\)"):
        load_settings()


def test_unknown_variables_get_the_closest_known_name() -> None:
    found = unknown_variables(
        {
            "EYP_HTTP__MAX_ATEMPTS": "3",
            "eyp_htp__max_attempts": "3",  # names are not case-sensitive
            "EYP_HTTP": '{"read_timeout": 3, "max_atempts": 3}',  # a section as JSON
            "EYP_NOTHING_LIKE_IT": "1",
            "EYP_HTTP__MAX_ATTEMPTS": "3",
            "EYP_BATCH__MIN_ROWS_FRACTION": "0.2",
            "EYP_DBT_TARGET": "local",  # set by the platform for dbt
            "EYP_REQUIRE_EMULATORS": "1",  # read by the tests and scripts
            "PATH": "/bin",
        }
    )
    assert found == [
        ("EYP_HTTP__MAX_ATEMPTS", "EYP_HTTP__MAX_ATTEMPTS"),
        ("eyp_htp__max_attempts", "EYP_HTTP__MAX_ATTEMPTS"),
        ("EYP_HTTP__MAX_ATEMPTS", "EYP_HTTP__MAX_ATTEMPTS"),
        ("EYP_NOTHING_LIKE_IT", None),
    ]


def test_misspelt_variables_warn_once_per_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("EYP_BUS__TOPICC", "x")
    monkeypatch.setenv("EYP_HTTP", '{"read_timeout": 3, "max_atempts": 2}')
    (tmp_path / ".env").write_text("EYP_STREAM__BATCHSIZE=10\n")
    with caplog.at_level(logging.WARNING, logger="ey_platform.settings"):
        settings = load_settings()
        load_settings()
    assert [r.getMessage() for r in caplog.records] == [
        "EYP_BUS__TOPICC is not a setting; did you mean EYP_BUS__TOPIC?",
        "EYP_HTTP__MAX_ATEMPTS is not a setting; did you mean EYP_HTTP__MAX_ATTEMPTS?",
        "EYP_STREAM__BATCHSIZE in .env is not a setting; did you mean EYP_STREAM__BATCH_SIZE?",
    ]
    assert (settings.http.read_timeout, settings.http.max_attempts) == (3, 5)


_NAME = re.compile(r"\bEYP_[A-Z0-9_]*[A-Z0-9](?![\w{])")  # not a prefix such as f"EYP_GCP__{x}"
_TEXT = {".py", ".sh", ".yml", ".yaml", ".md", ".toml", ".tf", ".sql", ".example", ".mmd"}
# Not the repository's own text: environments, caches, build and run output.
_SKIP = {".git", ".tools", ".emulators", "data", "target", "logs", "node_modules", "__pycache__"}


def _text_files(folder: Path) -> Iterator[Path]:
    for path in folder.iterdir():
        if path.is_dir() and path.name not in _SKIP and not path.name.startswith(".venv"):
            yield from _text_files(path)
        elif path.is_file() and (path.suffix in _TEXT or path.name in {"Makefile", "run"}):
            yield path


def test_every_eyp_name_in_the_repository_is_known() -> None:
    """So that a variable the platform reads outside Settings is never warned about."""
    named = {
        name: path.relative_to(ROOT)
        for path in _text_files(ROOT)
        for name in _NAME.findall(path.read_text(errors="replace"))
    }
    unknown = {name for name, _ in unknown_variables(dict.fromkeys(named, ""))}
    assert {name: str(named[name]) for name in unknown - DELIBERATE_TYPOS} == {}
    assert "EYP_DBT_TARGET" in named and "EYP_REQUIRE_EMULATORS" in named  # the scan works


def test_masked_shows_the_default_paths_resolved(tmp_path: Path) -> None:
    shown = Settings(data_dir=Path("here")).masked()
    data = tmp_path.resolve() / "here"
    assert shown["data_dir"] == str(data)
    assert shown["lake"]["local"]["root"] == str(data / "lake")
    assert shown["warehouse"]["duckdb"]["path"] == str(data / "warehouse.duckdb")
    assert shown["bus"]["sqlite"]["path"] == str(data / "bus.sqlite3")
    assert shown["poller_state_path"] == str(data / "stream" / "poller.sqlite3")
    explicit = Settings(lake={"local": {"root": "/srv/lake"}}).masked()
    assert explicit["lake"]["local"]["root"] == "/srv/lake"


def _models(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    yield model
    for info in model.model_fields.values():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _models(kind)


def test_every_section_of_every_backend_is_described() -> None:
    models = set(_models(Settings))
    assert len(models) == 17  # Settings, 10 sections, 6 backends inside lake, warehouse, bus
    assert [m.__name__ for m in models if not m.__doc__] == []
    undescribed = {
        m.__name__: [n for n, f in m.model_fields.items() if not f.description] for m in models
    }
    assert {name: fields for name, fields in undescribed.items() if fields} == {}


# Each setting that moved into its backend's section: old variable, new variable, a value
# and the attribute path that reads it.
MOVED = [
    ("EYP_LAKE__ROOT", "EYP_LAKE__LOCAL__ROOT", "/srv/lake", "lake.local.root"),
    ("EYP_LAKE__BUCKET", "EYP_LAKE__GCS__BUCKET", "b-1", "lake.gcs.bucket"),
    (
        "EYP_WAREHOUSE__DUCKDB_PATH",
        "EYP_WAREHOUSE__DUCKDB__PATH",
        "/srv/w.duckdb",
        "warehouse.duckdb.path",
    ),
    (
        "EYP_WAREHOUSE__LOCK_TIMEOUT",
        "EYP_WAREHOUSE__DUCKDB__LOCK_TIMEOUT",
        "7",
        "warehouse.duckdb.lock_timeout",
    ),
    (
        "EYP_WAREHOUSE__BIGQUERY_LOCATION",
        "EYP_WAREHOUSE__BIGQUERY__LOCATION",
        "US",
        "warehouse.bigquery.location",
    ),
    (
        "EYP_GCP__BIGQUERY_STORAGE_READ",
        "EYP_WAREHOUSE__BIGQUERY__STORAGE_READ",
        "true",
        "warehouse.bigquery.storage_read",
    ),
    ("EYP_BUS__SQLITE_PATH", "EYP_BUS__SQLITE__PATH", "/srv/bus.sqlite3", "bus.sqlite.path"),
    ("EYP_BUS__SYNC", "EYP_BUS__SQLITE__SYNC", "normal", "bus.sqlite.sync"),
    ("EYP_BUS__EXACTLY_ONCE", "EYP_BUS__PUBSUB__EXACTLY_ONCE", "false", "bus.pubsub.exactly_once"),
]
_MOVED_IDS = [old for old, *_ in MOVED]


def _read(settings: Settings, path: str) -> Any:
    value: Any = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _typed(value: str) -> Any:
    return {"true": True, "false": False, "7": 7.0}.get(
        value, Path(value) if "/" in value else value
    )


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A process that has not warned yet, its settings' warnings captured."""
    monkeypatch.setattr("ey_platform.settings._warned", set())
    caplog.set_level(logging.WARNING, logger="ey_platform.settings")


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ey_platform.settings"]


@pytest.mark.usefixtures("fresh_warnings")
@pytest.mark.parametrize(("old", "new", "value", "path"), MOVED, ids=_MOVED_IDS)
def test_the_new_names_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    old: str,
    new: str,
    value: str,
    path: str,
) -> None:
    monkeypatch.setenv(new, value)
    assert _read(load_settings(), path) == _typed(value)
    assert _messages(caplog) == []


@pytest.mark.usefixtures("fresh_warnings")
@pytest.mark.parametrize("origin", ["environment", "dotenv", "keyword"])
@pytest.mark.usefixtures("fresh_warnings")
@pytest.mark.parametrize(("old", "new", "value", "path"), MOVED, ids=_MOVED_IDS)
def test_each_old_name_still_works_and_warns_once(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    origin: str,
    old: str,
    new: str,
    value: str,
    path: str,
) -> None:
    overrides: dict[str, Any] = {}
    if origin == "environment":
        monkeypatch.setenv(old, value)
    elif origin == "dotenv":
        (tmp_path / ".env").write_text(f"{old}={value}\n")
    else:
        section, key = old.removeprefix("EYP_").lower().split("__")
        overrides[section] = {key: value}
    assert _read(load_settings(**overrides), path) == _typed(value)
    assert _read(load_settings(**overrides), path) == _typed(value)
    assert _messages(caplog) == [f"{old} is deprecated: use {new}"]
    assert unknown_variables({old: value}) == []  # not misspelt: renamed


@pytest.mark.usefixtures("fresh_warnings")
@pytest.mark.parametrize(("old", "new", "value", "path"), MOVED, ids=_MOVED_IDS)
def test_given_both_names_the_new_one_wins(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    old: str,
    new: str,
    value: str,
    path: str,
) -> None:
    default = _read(Settings(), path)
    monkeypatch.setenv(new, value)
    (tmp_path / ".env").write_text(f"{old}={default if default is not None else 'x'}\n")
    assert _read(load_settings(), path) == _typed(value)
    assert _messages(caplog) == [f"{old} is deprecated: use {new} (both are set: {new} wins)"]


@pytest.mark.usefixtures("fresh_warnings")
def test_a_bad_value_is_named_as_it_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EYP_BUS__SQLITE__SYNC", "sometimes")
    with pytest.raises(ConfigError, match=r"^invalid configuration: EYP_BUS__SQLITE__SYNC: "):
        load_settings()
    monkeypatch.delenv("EYP_BUS__SQLITE__SYNC")
    with pytest.raises(ConfigError, match=r"^invalid configuration: EYP_BUS__SYNC: "):
        load_settings(bus={"sync": "sometimes"})
    settings = Settings(gcp={"bigquery_storage_read": True})
    assert settings.variable("warehouse", "bigquery", "storage_read") == (
        "EYP_GCP__BIGQUERY_STORAGE_READ"
    )
    assert Settings().variable("warehouse", "bigquery", "storage_read") == (
        "EYP_WAREHOUSE__BIGQUERY__STORAGE_READ"
    )


@pytest.mark.usefixtures("fresh_warnings")
def test_old_names_leave_the_callers_dicts_as_they_were() -> None:
    given = {"lock_timeout": 3, "raw_dataset": "r"}
    settings = load_settings(warehouse=given)
    assert settings.warehouse.duckdb.lock_timeout == 3 and settings.warehouse.raw_dataset == "r"
    assert given == {"lock_timeout": 3, "raw_dataset": "r"}
