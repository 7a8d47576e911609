"""Settings, read from the environment (prefix ``EYP_``, ``__`` for nesting) and ``.env``.

Every setting has a description; ``ey-platform config`` prints the effective values with
secrets masked. Backends are chosen from ``profile`` in :mod:`ey_platform.backends` and
nowhere else.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from ey_platform.errors import ConfigError
from ey_platform.settings_sections import (
    AlertSettings,
    BatchSettings,
    BusSettings,
    GcpSettings,
    HttpSettings,
    LakeSettings,
    LogSettings,
    MetricsSettings,
    StreamSettings,
    WarehouseSettings,
)

__all__ = [
    "AlertSettings",
    "BatchSettings",
    "BusSettings",
    "GcpSettings",
    "HttpSettings",
    "LakeSettings",
    "LogSettings",
    "MetricsSettings",
    "Settings",
    "StreamSettings",
    "WarehouseSettings",
    "load_settings",
    "unknown_variables",
    "warn_unknown_variables",
]

PUBLIC_API_URL = "https://fakestoreapi.com"
PREFIX = "EYP_"

# EYP_ variables that are not settings but that the platform sets or reads itself.
OTHER_VARIABLES = frozenset(
    {
        "EYP_DBT_TARGET",  # set by transform.py for dbt's profiles.yml
        "EYP_DUCKDB_PATH",  # idem
        "EYP_DBT_SCHEMA",  # idem: the build dataset dbt writes to
        "EYP_REQUIRE_EMULATORS",  # scripts/emulators.sh, .ci/run and the contract tests
        "EYP_DBT_CI_DATASET",  # scripts/deploy.sh: the dataset of the deploy's dbt check
        "EYP_EMULATORS_DIR",  # scripts/emulators.sh
        "EYP_EMULATOR_PROJECT",  # idem
        "EYP_TEST_EMULATOR_ENV",  # written by scripts/emulators.sh, read by the tests
        "EYP_PYTHON313",  # .ci/run
        "EYP_REQUIRE_BROWSER",  # .ci/run and the workflow: the dashboard's browser test
        "EYP_CHROMIUM",  # the browser test's Chromium, and its driver
        "EYP_CHROMEDRIVER",  # idem
    }
)

# Settings that moved into a backend's section, by old place: the old variable names
# (EYP_WAREHOUSE__LOCK_TIMEOUT) still work for one release, with a warning.
RENAMED: dict[tuple[str, str], tuple[str, ...]] = {
    ("lake", "root"): ("lake", "local", "root"),
    ("lake", "bucket"): ("lake", "gcs", "bucket"),
    ("warehouse", "duckdb_path"): ("warehouse", "duckdb", "path"),
    ("warehouse", "lock_timeout"): ("warehouse", "duckdb", "lock_timeout"),
    ("warehouse", "bigquery_location"): ("warehouse", "bigquery", "location"),
    ("gcp", "bigquery_storage_read"): ("warehouse", "bigquery", "storage_read"),
    ("bus", "sqlite_path"): ("bus", "sqlite", "path"),
    ("bus", "sync"): ("bus", "sqlite", "sync"),
    ("bus", "exactly_once"): ("bus", "pubsub", "exactly_once"),
}

log = logging.getLogger("ey_platform.settings")
# New variable -> the old name it was given as, in the settings last validated: a bad
# value is reported under the name the user set.
_last_given_as: ContextVar[Mapping[str, str]] = ContextVar(
    "last_given_as", default=MappingProxyType({})
)


class Settings(BaseSettings):
    """Everything the platform can be told. See ``.env.example`` for the variable names."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # a blank line copied from .env.example means "default"
        # A .env may hold other tools' variables; a misspelt EYP_ one is warned about
        # (warn_unknown_variables), as in the environment, where pydantic ignores it.
        extra="ignore",
        validate_default=True,
    )

    profile: Literal["local", "gcp"] = Field(
        "local",
        description="local: files, DuckDB and an embedded bus. gcp: Cloud Storage, BigQuery, "
        "Pub/Sub. Moves every backend at once.",
    )
    environment: str = Field(
        "local",
        pattern=r"^[a-z][a-z0-9_-]{0,62}$",
        description="Name of this deployment (dev, staging, prod): the env label of every "
        "BigQuery job and the alerts' prefix.",
    )
    api_url: str = Field(PUBLIC_API_URL, description="Base URL of the FakeStore API.")
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token sent to the API, for a gateway in front of it. "
        "The public FakeStore API needs none.",
    )
    data_dir: Path = Field(
        Path("./data"), description="Where the lake, the warehouse file and the bus live locally."
    )
    http: HttpSettings = Field(default_factory=HttpSettings, description="HTTP client.")
    batch: BatchSettings = Field(default_factory=BatchSettings, description="Daily batch.")
    lake: LakeSettings = Field(default_factory=LakeSettings, description="Raw lake.")
    warehouse: WarehouseSettings = Field(
        default_factory=WarehouseSettings, description="Warehouse."
    )
    bus: BusSettings = Field(default_factory=BusSettings, description="Message bus.")
    stream: StreamSettings = Field(default_factory=StreamSettings, description="Streaming.")
    gcp: GcpSettings = Field(default_factory=GcpSettings, description="Google Cloud.")
    log: LogSettings = Field(default_factory=LogSettings, description="Logging.")
    alerts: AlertSettings = Field(default_factory=AlertSettings, description="Alerting.")
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description="Metrics endpoint of `up`."
    )
    _given_as: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _accept_old_names(cls, data: Any, handler: ModelWrapValidatorHandler[Settings]) -> Settings:
        if isinstance(data, dict):
            data = dict(data)  # the caller's dicts stay as they were
            given_as = _move_renamed(data)
        else:
            given_as = {}
        _last_given_as.set(given_as)
        settings = handler(data)
        settings._given_as = given_as
        return settings

    @field_validator("api_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    def variable(self, *path: str) -> str:
        """The variable of the setting at ``path``, under the name the user set it (an old
        name still in use), for messages: ``variable("warehouse", "duckdb", "path")``."""
        name = _variable(path)
        return self._given_as.get(name, name)

    @property
    def json_logs(self) -> bool:
        """Whether log lines are JSON objects (``EYP_LOG__FORMAT``; auto: on profile gcp)."""
        return self.log.format == "json" or (self.log.format == "auto" and self.profile == "gcp")

    @property
    def lake_root(self) -> Path:
        return self.lake.local.root or self.data_dir / "lake"

    @property
    def duckdb_path(self) -> Path:
        return self.warehouse.duckdb.path or self.data_dir / "warehouse.duckdb"

    @property
    def bus_path(self) -> Path:
        return self.bus.sqlite.path or self.data_dir / "bus.sqlite3"

    @property
    def poller_state_path(self) -> Path:
        return self.data_dir / "stream" / "poller.sqlite3"

    @property
    def serving_path(self) -> Path:
        """The read-only copy of the published marts that BI tools open (DuckDB)."""
        return self.data_dir / "serving" / "analytics.duckdb"

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data: every secret replaced by ``**********``,
        every local path absolute, with the defaults derived from ``data_dir`` filled in
        (and the poller's state file, which lives there)."""
        shown = self.model_dump(mode="json")  # SecretStr dumps as '**********' in JSON mode
        shown["data_dir"] = str(self.data_dir.resolve())
        shown["poller_state_path"] = str(self.poller_state_path.resolve())
        shown["serving_path"] = str(self.serving_path.resolve())
        shown["lake"]["local"]["root"] = str(self.lake_root.resolve())
        shown["warehouse"]["duckdb"]["path"] = str(self.duckdb_path.resolve())
        shown["bus"]["sqlite"]["path"] = str(self.bus_path.resolve())
        return shown


def _move_renamed(data: dict[str, Any]) -> dict[str, str]:
    """Move each setting given at its old place in ``data`` (sections as dicts) to its new
    place, warning once per name; one given at both places keeps the new value. Returns
    new variable -> old variable for the settings taken from an old name."""
    given_as = {}
    for (section, key), new in RENAMED.items():
        old_section = data.get(section)
        if not isinstance(old_section, dict) or key not in old_section:
            continue
        old_name, new_name = _variable((section, key)), _variable(new)
        data[section] = {k: v for k, v in old_section.items() if k != key}
        target = _section_copy(data, new[:-1])
        both = target is None or new[-1] in target
        if target is not None and not both:
            target[new[-1]] = old_section[key]
            given_as[new_name] = old_name
        if old_name not in _warned:
            _warned.add(old_name)
            wins = f" (both are set: {new_name} wins)" if both else ""
            log.warning("%s is deprecated: use %s%s", old_name, new_name, wins)
    return given_as


def _section_copy(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    """The section of ``data`` at ``path``, replaced by a copy of its own (the caller's
    dicts stay as they were), created if absent; None when it is given whole (a model)."""
    section = data
    for part in path:
        inner = section.get(part, {})
        if not isinstance(inner, dict):
            return None
        section[part] = dict(inner)
        section = section[part]
    return section


@cache
def setting_variables(model: type[BaseModel] = Settings, prefix: str = PREFIX) -> frozenset[str]:
    """Every variable name a setting is read from; a nested section is one too (JSON)."""
    names = {f"{prefix}{name.upper()}" for name in model.model_fields}
    for name, section in _sections(model).items():
        names |= setting_variables(section, f"{prefix}{name.upper()}__")
    return frozenset(names)


def unknown_variables(variables: Mapping[str, str | None]) -> list[tuple[str, str | None]]:
    """The ``EYP_`` names in ``variables`` that are neither a setting nor one the platform
    uses, each with the closest known name (or None). The keys of a section given as JSON
    (``EYP_HTTP='{"read_timeout": 3}'``) are checked as names too (EYP_HTTP__READ_TIMEOUT)."""
    known = setting_variables() | OTHER_VARIABLES | {_variable(old) for old in RENAMED}
    found = []
    for name in _names(variables):
        if name.upper().startswith(PREFIX) and name.upper() not in known:
            close = difflib.get_close_matches(name.upper(), known, n=1)
            found.append((name, close[0] if close else None))
    return found


def _names(variables: Mapping[str, str | None]) -> Iterator[str]:
    sections = {f"{PREFIX}{name.upper()}" for name in _sections(Settings)}
    for name, value in variables.items():
        yield name
        if name.upper() in sections and value and value.lstrip().startswith("{"):
            try:
                keys = json.loads(value)
            except ValueError:
                continue  # load_settings reports it
            if isinstance(keys, dict):
                yield from (f"{name}__{str(key).upper()}" for key in keys)


def _sections(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """The fields of ``model`` that are models themselves, by name."""
    return {
        name: info.annotation
        for name, info in model.model_fields.items()
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
    }


_warned: set[str] = set()


def warn_unknown_variables() -> None:
    """Log one warning per misspelt ``EYP_`` variable of the environment or ``.env``,
    once per process: pydantic ignores a name that is not a setting."""
    # The .env that Settings reads, its names lower-cased (names are not case-sensitive).
    from_file = {k.upper(): v for k, v in DotEnvSettingsSource(Settings).env_vars.items()}
    for origin, variables in (("", dict(os.environ)), (" in .env", from_file)):
        for name, close in unknown_variables(variables):
            if name.upper() in _warned:
                continue
            _warned.add(name.upper())
            hint = f"; did you mean {close}?" if close else ""
            log.warning("%s%s is not a setting%s", name, origin, hint)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and ``.env``; keyword overrides win (CLI flags).

    A bad value raises :class:`ConfigError` naming the variable and what was wrong with it;
    a name that is not a setting is logged as a warning (:func:`warn_unknown_variables`).
    """
    clean = {key: value for key, value in overrides.items() if value is not None}
    try:
        warn_unknown_variables()
        return Settings(**clean)
    except ValidationError as exc:
        problems = "; ".join(f"{_given_variable(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None
    except SettingsError as exc:
        raise ConfigError(f"invalid configuration: {_unparsable(exc)}") from None
    except UnicodeDecodeError as exc:
        env_file = Path(str(Settings.model_config["env_file"])).resolve()
        raise ConfigError(f"{env_file}: not UTF-8 text (byte {exc.start})") from None


def _variable(loc: tuple[int | str, ...]) -> str:
    return PREFIX + "__".join(str(part) for part in loc).upper()


def _given_variable(loc: tuple[int | str, ...]) -> str:
    """The variable of an invalid value, under the name the user set it."""
    name = _variable(loc)
    return _last_given_as.get().get(name, name)


def _unparsable(exc: SettingsError) -> str:
    """A nested section given a value that is not JSON (``EYP_HTTP='{not json'``)."""
    found = re.search(r'field "(\w+)" from source "(\w+)"', str(exc))
    if found is None:
        return str(exc)
    field, source = found.groups()
    where = " in .env" if source.startswith("DotEnv") else ""
    cause = exc.__cause__
    # The message of a JSON error names a position, never the text of the value.
    reason = (
        f" ({cause.msg} at column {cause.colno})" if isinstance(cause, json.JSONDecodeError) else ""
    )
    variable = _variable((field,))
    return (
        f"{variable}{where}: not valid JSON{reason}; give a JSON object or set "
        f"{variable}__<NAME> variables"
    )
