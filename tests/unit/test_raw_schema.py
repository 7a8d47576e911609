"""The raw schema file is the one description of the raw layer: the event model agrees
with ``carts_events``, and every backend's column lists cover exactly its columns."""

from __future__ import annotations

import tomllib
import types
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import pytest
from typing_extensions import is_typeddict

from ey_platform.models import CartEvent
from ey_platform.warehouse.duckdb import DuckDBWarehouse
from ey_platform.warehouse.duckdb.ddl import COMPUTED, TYPES
from ey_platform.warehouse.duckdb.load import _QUARANTINE_VALUES, _RECORD_VALUES
from ey_platform.warehouse.raw_schema import SCHEMA_FILE, Table, raw_schema, raw_table

ROOT = Path(__file__).resolve().parents[2]

_PYTHON_TYPES: dict[Any, str] = {str: "STRING", int: "INT64", datetime: "TIMESTAMP"}


def _kinds(hint: Any) -> set[str | None]:
    """The BigQuery types a field of the model can take, None for null."""
    origin = get_origin(hint)
    if origin is Annotated:
        return _kinds(get_args(hint)[0])
    if origin in (Union, types.UnionType):
        return set().union(*(_kinds(arg) for arg in get_args(hint)))
    if origin is Literal:
        return {_PYTHON_TYPES[type(value)] for value in get_args(hint)}
    if hint is None or hint is type(None):
        return {None}
    if is_typeddict(hint):
        return {"JSON"}
    return {_PYTHON_TYPES[hint]}


def _variants() -> tuple[Any, ...]:
    """The event types of :data:`CartEvent` (an annotated union of TypedDicts)."""
    union = get_args(CartEvent)[0]
    found = get_args(union)
    assert found and all(is_typeddict(v) for v in found), "CartEvent is not a union of records"
    return found


def _model_columns(variants: tuple[Any, ...]) -> dict[str, tuple[str, str]]:
    """Each field of the events, as a column would hold it: (type, mode). A field that
    some variant lacks or may leave null is nullable."""
    hints = [get_type_hints(variant, include_extras=True) for variant in variants]
    columns = {}
    for name in sorted(set().union(*hints)):
        kinds = set().union(*(_kinds(h[name]) if name in h else {None} for h in hints))
        typed = kinds - {None}
        assert len(typed) == 1, f"{name}: more than one type in the model: {typed}"
        columns[name] = (typed.pop(), "NULLABLE" if None in kinds else "REQUIRED")
    return columns


def _schema_columns(table: Table) -> dict[str, tuple[str, str]]:
    return {c.name: (c.type, c.mode) for c in table.fields}


def test_the_fields_of_the_event_model_are_the_columns_of_carts_events() -> None:
    table = raw_table("carts_events")
    assert _model_columns(_variants()) == _schema_columns(table)
    assert all(c.metadata for c in table.columns if c.name not in _model_columns(_variants()))


def test_a_field_added_to_the_model_alone_is_found() -> None:
    changed, *others = _variants()

    class WithCoupon(changed):  # type: ignore[misc,valid-type]
        coupon: str

    with_coupon = WithCoupon
    assert "coupon" in _model_columns((with_coupon, *others))
    assert _model_columns((with_coupon, *others)) != _schema_columns(raw_table("carts_events"))


def test_every_type_and_computed_column_is_known_to_duckdb() -> None:
    tables = raw_schema().tables.values()
    assert {c.type for t in tables for c in t.columns} <= TYPES.keys()
    assert {c.name for t in tables for c in t.columns if c.computed} == COMPUTED.keys()
    assert {c.compression for t in tables for c in t.columns} <= {None, "zstd"}


@pytest.mark.parametrize("entity", ["products", "users"])
def test_the_duckdb_load_writes_every_stored_column(entity: str) -> None:
    assert list(_RECORD_VALUES) == [c.name for c in raw_table(entity).stored]
    assert list(_QUARANTINE_VALUES) == raw_table("_quarantine").names


def test_the_bigquery_load_writes_every_column() -> None:
    pytest.importorskip("google.cloud.bigquery")
    from datetime import UTC, date

    from ey_platform.warehouse.base import LoadMeta
    from ey_platform.warehouse.bigquery.load import BigQueryPartitionLoad

    load = BigQueryPartitionLoad.__new__(BigQueryPartitionLoad)
    load.meta = LoadMeta("users", date(2026, 11, 26), "run1", datetime(2026, 11, 26, tzinfo=UTC))
    for entity in ("products", "users"):
        assert list(load._record_values()) == raw_table(entity).names
    rejects = type("Rejects", (), {"uri": "gs://b/q.jsonl"})()
    assert list(load._quarantine_values(rejects)) == raw_table("_quarantine").names


def test_duckdb_creates_the_tables_and_views_of_the_file(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.setup()
    warehouse.setup()  # again: nothing to add
    schema = raw_schema()
    for table in schema.tables.values():
        rows = warehouse.query(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'bq_raw' AND table_name = ? ORDER BY ordinal_position",
            [table.name],
        )
        assert [(name, kind) for name, kind, _ in rows] == [
            (c.name, TYPES[c.type].replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"))
            for c in table.columns
        ]
        nullable = {name for name, _, null in rows if null == "YES"}
        assert nullable == {c.name for c in table.columns if c.nullable or c.computed}
    views = warehouse.query("SELECT view_name FROM duckdb_views() WHERE schema_name = 'bq_raw'")
    assert {name for (name,) in views} == set(schema.views)


def test_the_views_read_only_raw_tables() -> None:
    schema = raw_schema()
    assert schema.views, "no view in the raw schema"
    for view in schema.views.values():
        assert view.reads <= schema.tables.keys(), view.name
        assert "{" not in view.sql(lambda name: f"bq_raw.{name}")


def test_the_schema_file_ships_in_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["ey_platform"]
    assert SCHEMA_FILE.relative_to(ROOT / "src" / "ey_platform").as_posix() in shipped
