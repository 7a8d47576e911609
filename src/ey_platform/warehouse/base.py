"""The warehouse interface. Backends: :mod:`.duckdb` (local), :mod:`.bigquery`.

The raw layer (tables and the ``cart_states`` view) is described once, in
``raw_schema.json`` (:mod:`.raw_schema`); the named reads are in :mod:`.reads`.

Raw tables (``products``, ``users``) hold the record as received in ``_raw`` (JSON,
lossless: unknown fields included), its ``id``, and the metadata columns
``_ingestion_date``, ``_extracted_at``, ``_loaded_at``, ``_source_file``, ``_run_id``
and ``_record_hash``. A load replaces one ingestion date in one transaction, so a day
re-run any number of times leaves the table as one run would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

from ey_platform.lake.base import LakeObject

CartState = tuple[int, str | None, int]
"""A cart as landed: its id, the content hash of its latest observed state (None if that
is a deletion) and its highest version."""


@dataclass(frozen=True, slots=True)
class LoadMeta:
    """Who loads what: stamped on every loaded row."""

    entity: str
    day: date
    run_id: str
    extracted_at: datetime


@dataclass(slots=True)
class RunRecord:
    """One row of ``bq_raw._pipeline_runs``: a run of a job for one entity."""

    run_id: str
    job: str
    entity: str
    day: date
    started_at: datetime
    source: str
    status: str = "running"
    finished_at: datetime | None = None
    extracted: int | None = None
    valid: int | None = None
    quarantined: int | None = None
    landed: int | None = None
    loaded: int | None = None
    content_sha256: str | None = None
    error: str | None = None
    holder: str | None = None
    """``host:pid`` of the process that runs it, so that a later run can tell a run that
    died (status still ``running``) from one that is still going."""

    def row(self) -> dict[str, Any]:
        """The run as a row of ``_pipeline_runs``, column by column (``day`` is stored as
        ``ingestion_date``)."""
        row = asdict(self)
        return {("ingestion_date" if name == "day" else name): v for name, v in row.items()}

    @classmethod
    def columns(cls) -> list[str]:
        """The columns of ``_pipeline_runs``, in the order of :meth:`row`."""
        return [("ingestion_date" if f.name == "day" else f.name) for f in fields(cls)]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunRecord:
        """The inverse of :meth:`row`."""
        values = {("day" if name == "ingestion_date" else name): v for name, v in row.items()}
        return cls(**values)


QualityStatus = Literal["pass", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class QualityResult:
    """One row of ``bq_raw._quality_results``: the outcome of one data-quality check of
    one entity (a raw table) or model, in one run of a job."""

    run_id: str
    job: str
    check_name: str
    """``volume``, ``schema``, ``freshness`` or a dbt test's name."""
    entity: str
    status: QualityStatus
    observed: str | None
    expected: str | None
    detail: str | None
    checked_at: datetime

    def __post_init__(self) -> None:
        # One line each: dbt's messages span lines, and a row's text is read in a table.
        for name in ("observed", "expected", "detail"):
            text = getattr(self, name)
            if text is not None:
                object.__setattr__(self, name, " ".join(str(text).split()))

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "_checked_date": self.checked_at.date()}

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(slots=True)
class Incident:
    """One row of ``bq_raw._incidents``: a condition an operator is told of once when
    it starts and once when it ends (the last incident of each key is kept)."""

    incident: str
    """What is wrong, as a key: ``batch.failed``, ``batch.held:users``, ``stream.backlog``."""
    job: str
    summary: str
    run_id: str | None
    opened_at: datetime
    resolved_at: datetime | None = None
    notified_at: datetime | None = None
    """When the webhook took the opening message; None: not sent yet (no webhook, or it
    failed), so the next occurrence sends it."""

    def row(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(frozen=True, slots=True)
class EventRows:
    """A batch of validated cart events: each message's JSON text and bus metadata."""

    data: list[bytes]
    message_ids: list[str]
    publish_times: list[datetime]


@dataclass(frozen=True)
class MartSummary:
    """Counts at every layer, the carts alive in the events and in the fact table, and
    revenue by category: what the demo shows at its end."""

    layers: list[tuple[str, str, int]]
    """(layer, table as ``dataset.table``, rows), from raw to marts."""
    events_table: str
    event_carts: int
    """Carts whose latest observed event is not a deletion."""
    fact_carts: int
    """Distinct carts in ``fact_orders``."""
    revenue: list[tuple[str, Decimal, int]]
    """(category, revenue, items sold), by category."""


class EventSink(Protocol):
    """Where the consumer lands cart events, once per event id."""

    def write(self, rows: EventRows) -> int:
        """Insert the events whose ids are not stored yet, in one transaction; returns
        how many were inserted. Durable when it returns."""

    def release(self) -> None:
        """Let go of any held connection (the consumer is idle)."""


class PartitionLoad(Protocol):
    """Loads one ingestion date of one raw table, part by part, then swaps it in."""

    def add(self, part: LakeObject) -> None:
        """Stage a landed part (may load in the background)."""

    def add_rejects(self, rejects: LakeObject) -> None:
        """Stage the run's quarantine file."""

    def commit(self) -> int:
        """Replace the date's rows (and its quarantine) with what was staged, in one
        transaction; returns the rows loaded. Raises ``ReconciliationError`` and changes
        nothing if the rows do not match the records of the parts."""

    def abort(self) -> None:
        """Drop what was staged; the table is untouched."""


class Warehouse(Protocol):
    """Where raw data lands and the marts are built."""

    raw: str
    """Dataset (DuckDB schema) of the raw tables."""
    analytics: str
    """Dataset (DuckDB schema) of the published marts: what readers see."""
    build: str
    """Dataset (DuckDB schema) where dbt builds and tests everything before the marts
    are published: ``<analytics>_build``, private to the transform."""

    def setup(self) -> None:
        """Create the datasets and raw tables if they do not exist."""

    def begin_load(self, meta: LoadMeta) -> PartitionLoad:
        """Start replacing ``meta.day`` of the raw table of ``meta.entity``."""

    def partition_runs(self, entity: str, day: date) -> set[str]:
        """The run ids whose rows the date's partition holds now."""

    def latest_day_rows(self, entity: str) -> tuple[date, int] | None:
        """The latest ingestion date of ``entity``'s raw table and its row count (None if
        the table is empty)."""

    def recent_day_rows(self, entity: str, days: int = 7) -> list[tuple[date, int]]:
        """The ``days`` latest ingestion dates of ``entity``'s raw table with their row
        counts, newest first: what a new load is compared with before it replaces a day."""

    def last_runs(self) -> list[RunRecord]:
        """The latest run of each job and entity in ``_pipeline_runs``."""

    def loaded_at(self, tables: Sequence[str]) -> dict[str, datetime | None]:
        """The newest ``_loaded_at`` of each raw table (None for an empty one)."""

    def record_quality(self, results: Sequence[QualityResult]) -> None:
        """Append ``results`` to ``_quality_results``."""

    def latest_quality(self) -> list[QualityResult]:
        """The latest result of each check and entity in ``_quality_results``."""

    def open_incidents(self) -> list[Incident]:
        """The incidents of ``_incidents`` that have not ended."""

    def record_incident(self, incident: Incident) -> None:
        """Insert or replace the row of ``incident.incident`` in ``_incidents``."""

    def running_runs(self, job: str) -> list[RunRecord]:
        """The runs of ``job`` whose status in ``_pipeline_runs`` is still ``running``."""

    def events_loaded_since(self, since: datetime) -> int:
        """How many cart events were landed after ``since``."""

    def finished_entities(self, job: str, day: date) -> set[str]:
        """The entities with a run of ``job`` for ``day`` that ended well: ``loaded``, or
        ``unchanged`` from the loaded run."""

    def cart_states(self) -> list[CartState]:
        """Every cart landed in ``carts_events``, as its latest observed event left it
        (the ``cart_states`` view): ``(cart_id, content_hash, top_version)``, the hash
        None where that event is a deletion."""

    def live_cart_states(self) -> list[CartState]:
        """The carts of :meth:`cart_states` whose latest observed event is not a
        deletion."""

    def mart_summary(self) -> MartSummary:
        """Rows at every layer, carts alive in the events and in the marts, revenue."""

    def event_sink(self) -> EventSink:
        """The sink of ``bq_raw.carts_events``."""

    def record_run(self, run: RunRecord) -> None:
        """Insert or update the run's row in ``_pipeline_runs``."""

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read-only query (in the backend's dialect) and return its rows."""

    def carry_into_build(self, tables: Sequence[str]) -> list[str]:
        """Copy each of ``tables`` from ``analytics`` into ``build`` where ``build`` has
        none yet and ``analytics`` has one: a deployment from before the build dataset
        keeps its snapshot's history. Returns the tables copied."""

    def publish(self, marts: Sequence[str]) -> None:
        """Replace the published ``marts`` of ``analytics`` with the build's, in one
        step a reader never sees half done (a mart new to ``analytics`` is created
        first, with the build's schema)."""

    def read_marts(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one read-only query against the published marts, unqualified names
        resolving to them; its column names and rows. Never blocks the platform: on
        DuckDB it reads the serving file, on BigQuery ``analytics``."""

    def cart_activity(self, since: date) -> list[tuple[date, str, int]]:
        """The cart events landed each day (``_event_date``) from ``since`` on, by type:
        ``(day, event_type, events)`` in day and type order, for the dashboard."""
