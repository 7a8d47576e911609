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
from datetime import time
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from ey_platform.errors import ConfigError

PUBLIC_API_URL = "https://fakestoreapi.com"
PREFIX = "EYP_"

# EYP_ variables that are not settings but that the platform sets or reads itself.
OTHER_VARIABLES = frozenset(
    {
        "EYP_DBT_TARGET",  # set by transform.py for dbt's profiles.yml
        "EYP_DUCKDB_PATH",  # idem
        "EYP_REQUIRE_EMULATORS",  # scripts/emulators.sh, .ci/run and the contract tests
        "EYP_DBT_CI_DATASET",  # scripts/deploy.sh: the dataset of the deploy's dbt check
        "EYP_EMULATORS_DIR",  # scripts/emulators.sh
        "EYP_EMULATOR_PROJECT",  # idem
        "EYP_TEST_EMULATOR_ENV",  # written by scripts/emulators.sh, read by the tests
        "EYP_PYTHON313",  # .ci/run
    }
)

log = logging.getLogger("ey_platform.settings")


class HttpSettings(BaseModel):
    """How the FakeStore client talks to the API."""

    connect_timeout: float = Field(5.0, gt=0, description="Seconds to open a connection.")
    read_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds to wait for the next bytes of an answer; the public API can hang.",
    )
    max_attempts: int = Field(5, ge=1, le=20, description="Attempts per request, first included.")
    backoff_base: float = Field(0.5, ge=0, description="First retry delay in seconds; doubles.")
    backoff_max: float = Field(30.0, ge=0, description="Longest delay between two attempts.")
    retry_after_max: float = Field(
        120.0, ge=0, description="Longest Retry-After the client honours before giving up."
    )


class BatchSettings(BaseModel):
    """The daily batch of products and users."""

    workers: int = Field(
        2, ge=1, le=64, description="Processes that validate a large answer in parallel."
    )
    part_mb: int = Field(32, ge=1, description="Size of one lake part file, in MB.")
    run_at: time = Field(
        time(2, 0), description="UTC time of day at which `ey-platform up` runs the batch."
    )
    retry_after: float = Field(
        10.0, gt=0, description="Minutes after which `ey-platform up` retries a failed batch."
    )
    min_rows_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A batch that would replace a day with fewer than this fraction of the "
        "rows of the entity's last loaded day is held (status held, exit 1); `batch --force` "
        "loads it anyway.",
    )


class LakeSettings(BaseModel):
    """The raw lake: where date-partitioned JSONL files are written once."""

    root: Path | None = Field(
        None, description="Local lake root (profile local). Default: <data_dir>/lake."
    )
    bucket: str = Field(
        "ey-data-platform-raw-data", description="Cloud Storage bucket (profile gcp)."
    )


class WarehouseSettings(BaseModel):
    """The warehouse: DuckDB locally, BigQuery on Google Cloud."""

    duckdb_path: Path | None = Field(
        None, description="DuckDB file (profile local). Default: <data_dir>/warehouse.duckdb."
    )
    raw_dataset: str = Field("bq_raw", description="Dataset (DuckDB schema) of the raw tables.")
    analytics_dataset: str = Field(
        "bq_analytics", description="Dataset (DuckDB schema) of the marts."
    )
    lock_timeout: float = Field(
        60.0, gt=0, description="Seconds to keep retrying when another process holds DuckDB."
    )
    bigquery_location: str = Field("EU", description="BigQuery dataset location (profile gcp).")


class BusSettings(BaseModel):
    """The message bus between the cart poller and the consumer."""

    sqlite_path: Path | None = Field(
        None, description="Embedded bus file (profile local). Default: <data_dir>/bus.sqlite3."
    )
    topic: str = Field("carts-events", description="Topic the poller publishes cart events to.")
    subscription: str = Field("carts-events-sub", description="Subscription the consumer reads.")
    dead_letter_topic: str = Field(
        "carts-events-dlq", description="Where undeliverable or invalid messages go."
    )
    ack_deadline: float = Field(
        60.0, gt=0, description="Seconds before an unacknowledged message is redelivered."
    )
    max_delivery_attempts: int = Field(
        5, ge=1, description="Deliveries before a message goes to the dead-letter topic."
    )
    exactly_once: bool = Field(
        True,
        description="Pub/Sub: exactly-once delivery on the subscription when setup creates "
        "it (acks of expired leases are refused). The emulator lacks it.",
    )
    sync: Literal["full", "normal"] = Field(
        "full",
        description="Embedded bus durability: full survives a power cut, normal only a "
        "crash of the process (and publishes one at a time about 4 times faster).",
    )


class StreamSettings(BaseModel):
    """The cart poller and the consumer."""

    poll_interval: float = Field(60.0, gt=0, description="Seconds between two polls of carts.")
    batch_size: int = Field(
        20_000, ge=1, le=100_000, description="Messages the consumer pulls and lands at once."
    )
    transform_every: float = Field(
        15.0, gt=0, description="Minutes between two transforms in `ey-platform up`."
    )
    reconcile_every: float = Field(
        60.0,
        gt=0,
        description="Minutes between two checks of the poller's memory against the "
        "warehouse: carts it landed alive that the API no longer holds are deleted.",
    )
    max_delete_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A poll that would delete more than this fraction of the carts the "
        "poller knows fails and publishes nothing; `stream poll --once --allow-mass-delete` "
        "accepts it.",
    )


class GcpSettings(BaseModel):
    """Google Cloud project (profile gcp). Credentials come from Application Default
    Credentials; no key file is read from settings."""

    project: str | None = Field(None, description="Google Cloud project id (profile gcp).")
    storage_endpoint: str | None = Field(
        None,
        description="Cloud Storage API endpoint, for an emulator (then no credentials are sent).",
    )
    bigquery_endpoint: str | None = Field(
        None, description="BigQuery API endpoint, for an emulator (then no credentials are sent)."
    )
    pubsub_endpoint: str | None = Field(
        None, description="Pub/Sub host:port, for an emulator (then no credentials are sent)."
    )
    bigquery_storage_read: bool = Field(
        False,
        description="Read large query results with the BigQuery Storage Read API (needs "
        "bigquery.readsessions.create); off: results come through the REST API.",
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

    @field_validator("api_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @property
    def lake_root(self) -> Path:
        return self.lake.root or self.data_dir / "lake"

    @property
    def duckdb_path(self) -> Path:
        return self.warehouse.duckdb_path or self.data_dir / "warehouse.duckdb"

    @property
    def bus_path(self) -> Path:
        return self.bus.sqlite_path or self.data_dir / "bus.sqlite3"

    @property
    def poller_state_path(self) -> Path:
        return self.data_dir / "stream" / "poller.sqlite3"

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data: every secret replaced by ``**********``,
        every local path absolute, with the defaults derived from ``data_dir`` filled in
        (and the poller's state file, which lives there)."""
        shown = self.model_dump(mode="json")  # SecretStr dumps as '**********' in JSON mode
        shown["data_dir"] = str(self.data_dir.resolve())
        shown["poller_state_path"] = str(self.poller_state_path.resolve())
        shown["lake"]["root"] = str(self.lake_root.resolve())
        shown["warehouse"]["duckdb_path"] = str(self.duckdb_path.resolve())
        shown["bus"]["sqlite_path"] = str(self.bus_path.resolve())
        return shown


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
    known = setting_variables() | OTHER_VARIABLES
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
        problems = "; ".join(f"{_variable(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None
    except SettingsError as exc:
        raise ConfigError(f"invalid configuration: {_unparsable(exc)}") from None
    except UnicodeDecodeError as exc:
        env_file = Path(str(Settings.model_config["env_file"])).resolve()
        raise ConfigError(f"{env_file}: not UTF-8 text (byte {exc.start})") from None


def _variable(loc: tuple[int | str, ...]) -> str:
    return PREFIX + "__".join(str(part) for part in loc).upper()


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
