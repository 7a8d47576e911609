"""The sections of the settings, one model per stage and, inside a stage, one per backend.

:class:`ey_platform.settings.Settings` reads them from the environment and ``.env``.
"""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator


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
        "median rows of the entity's last 7 loaded days is held (status held, exit 1); "
        "`batch --force` loads it anyway.",
    )
    schema_policy: Literal["evolve", "warn", "freeze"] = Field(
        "warn",
        description="What a batch does when the fields or JSON types of an entity differ "
        "from its last loaded run: evolve loads and records it, warn also alerts, freeze "
        "holds the day (status held, the warehouse untouched).",
    )


class LocalLakeSettings(BaseModel):
    """The lake as files on this machine (profile local)."""

    root: Path | None = Field(
        None, description="Local lake root (profile local). Default: <data_dir>/lake."
    )


class GcsLakeSettings(BaseModel):
    """The lake in Cloud Storage (profile gcp)."""

    bucket: str = Field(
        "ey-data-platform-raw-data", description="Cloud Storage bucket (profile gcp)."
    )


class LakeSettings(BaseModel):
    """The raw lake: where date-partitioned JSONL files are written once."""

    local: LocalLakeSettings = Field(
        default_factory=LocalLakeSettings, description="Local files (profile local)."
    )
    gcs: GcsLakeSettings = Field(
        default_factory=GcsLakeSettings, description="Cloud Storage (profile gcp)."
    )


class DuckDBSettings(BaseModel):
    """The DuckDB warehouse file (profile local)."""

    path: Path | None = Field(
        None, description="DuckDB file (profile local). Default: <data_dir>/warehouse.duckdb."
    )
    lock_timeout: float = Field(
        60.0, gt=0, description="Seconds to keep retrying when another process holds DuckDB."
    )


class BigQuerySettings(BaseModel):
    """The BigQuery warehouse (profile gcp)."""

    location: str = Field("EU", description="BigQuery dataset location (profile gcp).")
    storage_read: bool = Field(
        False,
        description="Read large query results with the BigQuery Storage Read API (needs "
        "bigquery.readsessions.create); off: results come through the REST API.",
    )
    maximum_bytes_billed: int = Field(
        20 << 30,
        ge=10 << 20,
        description="Bytes a single BigQuery query of the platform or of dbt may bill; a "
        "query that would read more fails instead (20 GiB: at most $0.12 a query at "
        "on-demand prices).",
    )


class WarehouseSettings(BaseModel):
    """The warehouse: DuckDB locally, BigQuery on Google Cloud."""

    raw_dataset: str = Field("bq_raw", description="Dataset (DuckDB schema) of the raw tables.")
    analytics_dataset: str = Field(
        "bq_analytics", description="Dataset (DuckDB schema) of the published marts."
    )
    duckdb: DuckDBSettings = Field(
        default_factory=DuckDBSettings, description="DuckDB (profile local)."
    )
    bigquery: BigQuerySettings = Field(
        default_factory=BigQuerySettings, description="BigQuery (profile gcp)."
    )

    @property
    def build_dataset(self) -> str:
        """Where dbt builds and tests before the marts are published: private to the
        transform, named after the marts' dataset (Terraform derives it the same way)."""
        return f"{self.analytics_dataset}_build"


class SQLiteBusSettings(BaseModel):
    """The embedded bus, a SQLite file (profile local)."""

    path: Path | None = Field(
        None, description="Embedded bus file (profile local). Default: <data_dir>/bus.sqlite3."
    )
    sync: Literal["full", "normal"] = Field(
        "full",
        description="Embedded bus durability: full survives a power cut, normal only a "
        "crash of the process (and publishes one at a time about 4 times faster).",
    )


class PubSubSettings(BaseModel):
    """Pub/Sub (profile gcp)."""

    exactly_once: bool = Field(
        True,
        description="Pub/Sub: exactly-once delivery on the subscription when setup creates "
        "it (acks of expired leases are refused). The emulator lacks it.",
    )


class BusSettings(BaseModel):
    """The message bus between the cart poller and the consumer."""

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
    sqlite: SQLiteBusSettings = Field(
        default_factory=SQLiteBusSettings, description="Embedded bus (profile local)."
    )
    pubsub: PubSubSettings = Field(
        default_factory=PubSubSettings, description="Pub/Sub (profile gcp)."
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


class LogSettings(BaseModel):
    """What the platform's log lines look like."""

    format: Literal["auto", "text", "json"] = Field(
        "auto",
        description="text: key=value lines for a terminal. json: one JSON object a line, "
        "as Cloud Logging parses it. auto: json with profile gcp, text otherwise.",
    )


class AlertSettings(BaseModel):
    """Where and when the platform raises an alert."""

    webhook_url: SecretStr | None = Field(
        None,
        description="Incoming webhook (Slack or Google Chat) that gets one message when an "
        "incident opens and one when it ends. Unset: incidents are only logged.",
    )

    @field_validator("webhook_url")
    @classmethod
    def _an_http_url(cls, value: SecretStr | None) -> SecretStr | None:
        # The message never holds the value: it is a secret.
        if value is not None:
            parts = urlsplit(value.get_secret_value())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL (value not shown)")
        return value

    backlog_age: float = Field(
        15.0,
        gt=0,
        description="Minutes the bus's oldest unacknowledged message may wait before the "
        "backlog is an incident.",
    )
    timeout: float = Field(
        5.0, gt=0, description="Seconds to wait for the webhook; a slow one is logged, not fatal."
    )


class MetricsSettings(BaseModel):
    """The HTTP endpoint of `ey-platform up`."""

    port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port on which `ey-platform up` serves /healthz and Prometheus /metrics "
        "(0 picks a free one, logged). Unset: no endpoint.",
    )
    host: str = Field("127.0.0.1", description="Address of that endpoint: loopback by default.")
