"""The raw layer as data: every table and view of ``bq_raw``, read from ``raw_schema.json``.

The file is the one description of the raw layer. The DuckDB DDL, the BigQuery tables
and view, the column lists of the loads and of the event sinks are derived from it here
and in each backend, and Terraform reads the same file (``infra/terraform/bigquery.tf``).

Tables: ``columns`` in order, each with a BigQuery ``type`` (DuckDB's is derived), a
``mode`` (``REQUIRED`` or ``NULLABLE``), and optionally ``computed`` (the backend derives
the value from ``_raw``: DuckDB as a virtual column, BigQuery at load) and
``compression`` (a DuckDB storage hint; BigQuery chooses its own). ``partition`` and
``cluster`` lay the table out on BigQuery; ``key`` is unique (a primary key on DuckDB;
on BigQuery the sink's ``MERGE`` keeps it unique). Columns whose names start with ``_``
are the platform's metadata; in ``carts_events`` the others are the fields of a cart
event (:data:`ey_platform.models.CartEvent`).

Views: ``query`` is portable SQL (lines), where ``{table}`` stands for a raw table,
named as each backend names it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

SCHEMA_FILE = Path(__file__).with_name("raw_schema.json")

_TABLE_REFERENCE = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a raw table."""

    name: str
    type: str
    """The BigQuery type: ``STRING``, ``INT64``, ``JSON``, ``DATE`` or ``TIMESTAMP``."""
    mode: str
    computed: bool = False
    compression: str | None = None

    @property
    def nullable(self) -> bool:
        return self.mode == "NULLABLE"

    @property
    def metadata(self) -> bool:
        """The platform's own column, not a field of the record or event."""
        return self.name.startswith("_")


@dataclass(frozen=True, slots=True)
class Table:
    """One raw table."""

    name: str
    columns: tuple[Column, ...]
    partition: str | None
    cluster: tuple[str, ...]
    key: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def stored(self) -> list[Column]:
        """The columns a load writes: all but the computed ones."""
        return [c for c in self.columns if not c.computed]

    @property
    def fields(self) -> list[Column]:
        """The columns that hold the record's (or event's) own fields."""
        return [c for c in self.columns if not c.metadata]


@dataclass(frozen=True, slots=True)
class View:
    """One raw view: its query, with ``{table}`` for each raw table it reads."""

    name: str
    query: str

    def sql(self, table: Callable[[str], str]) -> str:
        """The query with each ``{table}`` named by ``table`` (how a backend names it)."""
        return _TABLE_REFERENCE.sub(lambda found: table(found.group(1)), self.query)

    @property
    def reads(self) -> set[str]:
        """The raw tables the view reads."""
        return set(_TABLE_REFERENCE.findall(self.query))


@dataclass(frozen=True, slots=True)
class RawSchema:
    tables: dict[str, Table]
    views: dict[str, View]


def _table(name: str, spec: dict[str, Any]) -> Table:
    columns = tuple(
        Column(
            c["name"],
            c["type"],
            c["mode"],
            computed=c.get("computed", False),
            compression=c.get("compression"),
        )
        for c in spec["columns"]
    )
    return Table(name, columns, spec["partition"], tuple(spec["cluster"]), tuple(spec["key"]))


@functools.cache
def raw_schema() -> RawSchema:
    """The raw layer, as ``raw_schema.json`` describes it."""
    spec = orjson.loads(SCHEMA_FILE.read_bytes())
    return RawSchema(
        tables={name: _table(name, table) for name, table in spec["tables"].items()},
        views={name: View(name, "\n".join(v["query"])) for name, v in spec["views"].items()},
    )


def raw_table(name: str) -> Table:
    return raw_schema().tables[name]


CART_STATES = "cart_states"
"""The view of each cart's latest observed event (every column of ``carts_events``)
and ``top_version``, its highest version."""
