"""The freshness limits read from the dbt project without dbt, and dbt's verdicts on a
source as quality results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ey_platform.errors import ConfigError
from ey_platform.ops import freshness
from ey_platform.ops.freshness import (
    SOURCES_YML,
    describe_age,
    describe_limits,
    freshness_limits,
    freshness_result,
)

H = timedelta(hours=1)


def test_the_project_s_limits_fit_the_schedules() -> None:
    limits = freshness_limits()
    # daily batch: two hours late warns, a lost day is an error
    assert limits["products"] == limits["users"] == (26 * H, 36 * H)
    # changes only: a quiet stream is worth a look, never an error
    assert limits["carts_events"] == (24 * H, None)
    assert limits["cart_states"] == (None, None)


def test_the_default_project_is_the_transform_s() -> None:
    from ey_platform.transform import DBT_PROJECT

    assert freshness.DBT_PROJECT == DBT_PROJECT


def _project(tmp_path: Path, source: dict[str, Any]) -> Path:
    path = tmp_path / SOURCES_YML
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump({"version": 2, "sources": [source]}))
    return tmp_path


def _t(count: int | None, period: str | None = "hour") -> dict[str, Any]:
    return {"count": count, "period": period}


BASE = {"warn_after": _t(26), "error_after": _t(36)}

# (the table's config freshness, what dbt makes of it under a source config of BASE)
PRECEDENCE = {
    "inherits": (None, (26 * H, 36 * H)),
    "overrides one, keeps the other": ({"warn_after": _t(2)}, (2 * H, 36 * H)),
    "null removes one": ({"warn_after": _t(24), "error_after": None}, (24 * H, None)),
    "null removes both": ("null", (None, None)),
    "half a limit keeps it": ({"error_after": _t(None)}, (26 * H, 36 * H)),
    "minutes and days": (
        {"warn_after": _t(10, "minute"), "error_after": _t(2, "day")},
        (10 * timedelta(minutes=1), 48 * H),
    ),
}


@pytest.mark.parametrize(("table", "expected"), PRECEDENCE.values(), ids=PRECEDENCE.keys())
def test_a_table_s_config_overrides_the_source_s_as_dbt_merges_them(
    tmp_path: Path, table: Any, expected: tuple[timedelta | None, timedelta | None]
) -> None:
    entry: dict[str, Any] = {"name": "t"}
    if table is not None:
        entry["config"] = {"freshness": None if table == "null" else table}
    project = _project(tmp_path, {"name": "s", "config": {"freshness": BASE}, "tables": [entry]})
    assert freshness_limits(project) == {"t": expected}
    assert _dbt_merge(BASE, entry.get("config", {}).get("freshness", {})) == expected


def test_a_table_sets_limits_again_under_a_source_without_any(tmp_path: Path) -> None:
    table = {"name": "t", "config": {"freshness": {"warn_after": _t(5)}}}
    other = {"name": "u"}
    project = _project(
        tmp_path, {"name": "s", "config": {"freshness": None}, "tables": [table, other]}
    )
    assert freshness_limits(project) == {"t": (5 * H, None), "u": (None, None)}
    assert _dbt_merge(None, {"warn_after": _t(5)}) == (5 * H, None)


def _dbt_merge(source: Any, table: Any) -> tuple[timedelta | None, timedelta | None]:
    """dbt's own answer: its parser's merge over the same levels (top-level freshness
    unset, as in the project)."""
    from dbt.artifacts.resources.v1.components import FreshnessThreshold
    from dbt.parser.sources import merge_source_freshness

    levels = [{}, source, {}, table]
    merged = merge_source_freshness(
        *(None if raw is None else FreshnessThreshold.from_dict(raw) for raw in levels)
    )

    def limit(time_: Any) -> timedelta | None:
        if not time_:
            return None
        return timedelta(**{f"{time_.period.value}s": time_.count})

    if merged is None:
        return (None, None)
    return (limit(merged.warn_after), limit(merged.error_after))


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        (
            {
                "name": "s",
                "tables": [{"name": "t", "config": {"freshness": {"warn_after": _t(1, "week")}}}],
            },
            "period 'week'",
        ),
        ({"name": "s", "tables": [{"config": {}}]}, "'name'"),
    ],
    ids=["unknown period", "table without a name"],
)
def test_a_wrong_yml_is_one_error_naming_the_file(
    tmp_path: Path, source: dict[str, Any], complaint: str
) -> None:
    project = _project(tmp_path, source)
    with pytest.raises(ConfigError, match=rf"_sources\.yml: .*{complaint}"):
        freshness_limits(project)


def test_a_missing_yml_is_one_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the freshness limits in .*_sources\.yml"):
        freshness_limits(tmp_path)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0 s"),
        (59.9, "59 s"),
        (60, "1 min"),
        (3599, "59 min"),
        (3600, "1 h"),
        (11520, "3 h 12 min"),
        (47 * 3600 + 59 * 60, "47 h 59 min"),
        (48 * 3600, "2 d"),
        (50 * 3600, "2 d 2 h"),
        (-5, "0 s"),
    ],
)
def test_an_age_reads_as_an_operator_says_it(seconds: float, shown: str) -> None:
    assert describe_age(seconds) == shown


def test_limits_read_as_the_alert_says_them() -> None:
    assert describe_limits((26 * H, 36 * H)) == "warn > 26 h, error > 36 h"
    assert describe_limits((24 * H, None)) == "warn > 24 h, no error"
    assert describe_limits((None, 90 * timedelta(minutes=1))) == "no warn, error > 1 h 30 min"
    assert describe_limits((None, None)) == "no limit"


LOADED = datetime(2026, 12, 1, 2, 0, 5, tzinfo=UTC)
CHECKED = datetime(2026, 12, 3, 2, 0, 5, tzinfo=UTC)


def _result(verdict: str, **kw: Any) -> Any:
    values: dict[str, Any] = {"age": 48 * 3600.0, "max_loaded_at": LOADED, "error": None}
    return freshness_result(
        "products",
        verdict,
        limits=(26 * H, 36 * H),
        run_id="r1",
        job="transform",
        checked_at=CHECKED,
        **{**values, **kw},
    )


def test_dbt_s_error_on_a_source_is_a_failed_check() -> None:
    result = _result("error")
    assert (result.check_name, result.entity, result.status) == ("freshness", "products", "fail")
    assert (result.observed, result.expected) == ("2 d", "warn > 26 h, error > 36 h")
    assert result.detail == "max_loaded_at 2026-12-01 02:00:05Z"
    assert (result.run_id, result.job, result.checked_at) == ("r1", "transform", CHECKED)


@pytest.mark.parametrize(("verdict", "status"), [("pass", "pass"), ("warn", "warn")])
def test_dbt_s_pass_and_warn_are_kept(verdict: str, status: str) -> None:
    assert _result(verdict, age=27 * 3600.0).status == status


def test_a_source_dbt_could_not_query_fails_with_dbt_s_error() -> None:
    result = _result(
        "runtime error",
        age=None,
        max_loaded_at=None,
        error="Runtime Error in source products\n  Table with name products does not exist!",
    )
    assert (result.status, result.observed) == ("fail", "not measured")
    assert result.detail == (
        "Runtime Error in source products Table with name products does not exist!"
    )


def test_an_empty_table_is_never_loaded() -> None:
    empty = datetime.min.replace(tzinfo=UTC)  # what dbt reports as its newest row
    result = _result("error", age=6.4e10, max_loaded_at=empty)
    assert (result.status, result.observed) == ("fail", "never loaded")
