"""The freshness limits of the raw sources, read from the dbt project's ``_sources.yml``:
``dbt source freshness`` judges each transform by them, and ``ey-platform health``
judges by them live, between transforms, so that both use one set of numbers. Reading
them imports no dbt (PyYAML comes with it) and takes milliseconds.

dbt's rule of precedence (``merge_source_freshness`` in ``dbt/parser/sources.py``) is
reproduced here: a table's limits are the source's ``freshness``, then the source's
``config.freshness``, then the table's ``freshness``, then the table's
``config.freshness``, each over the one before. A level that sets ``warn_after`` or
``error_after`` replaces that limit, one that leaves it out (or half sets it) keeps it,
and ``null`` removes it; ``freshness: null`` removes both, until a later level sets
some again. Source configs in ``dbt_project.yml`` are not read: the project sets none.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from ey_platform.errors import ConfigError
from ey_platform.warehouse.base import QualityResult, QualityStatus

# The dbt project in the package; transform.DBT_PROJECT, without importing what the
# transform imports.
DBT_PROJECT = Path(__file__).resolve().parents[1] / "dbt"
SOURCES_YML = Path("models") / "staging" / "_sources.yml"

Limits = tuple[timedelta | None, timedelta | None]
"""(warn_after, error_after); None: no such limit."""

# dbt's verdicts on a source; a runtime error (dbt could not query it) fails too.
_VERDICTS: dict[str, QualityStatus] = {"pass": "pass", "warn": "warn", "error": "fail"}
_KEEP = object()  # a limit a level leaves as the level before set it
_PERIODS = {"minute": "minutes", "hour": "hours", "day": "days"}


def freshness_limits(project: Path = DBT_PROJECT) -> dict[str, Limits]:
    """Source table -> its (warn_after, error_after), as dbt reads them from the
    project's ``_sources.yml``; (None, None) for a table whose freshness is not checked.
    Tables are named without their source: the project has one."""
    path = project / SOURCES_YML
    try:
        document = yaml.safe_load(path.read_text()) or {}
        limits: dict[str, Limits] = {}
        for source in document.get("sources") or []:
            for table in source.get("tables") or []:
                limits[table["name"]] = _table_limits(source, table)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"cannot read the freshness limits in {path}: {exc}") from exc
    return limits


def _table_limits(source: Mapping[str, Any], table: Mapping[str, Any]) -> Limits:
    levels = [
        source.get("freshness", {}),
        (source.get("config") or {}).get("freshness", {}),
        table.get("freshness", {}),
        (table.get("config") or {}).get("freshness", {}),
    ]
    merged: dict[str, object] | None = {"warn_after": _KEEP, "error_after": _KEEP}
    for raw in levels:
        level = None if raw is None else {k: _limit(raw, k) for k in ("warn_after", "error_after")}
        if merged is not None and level is not None:
            merged = {k: merged[k] if v is _KEEP else v for k, v in level.items()}
        elif merged is None and level is not None and _sets_any(level):
            merged = level
        else:
            merged = None
    if merged is None:
        return (None, None)
    warn, error = (merged[k] for k in ("warn_after", "error_after"))
    return (
        warn if isinstance(warn, timedelta) else None,
        error if isinstance(error, timedelta) else None,
    )


def _limit(freshness: Mapping[str, Any], key: str) -> object:
    """One limit of one level: a timedelta, None (``null``: removed) or _KEEP (left out,
    or without both a count and a period, which dbt takes as not set)."""
    if key not in freshness:
        return _KEEP
    raw = freshness[key]
    if raw is None:
        return None
    count, period = raw.get("count"), raw.get("period")
    if count is None or period is None:
        return _KEEP
    if period not in _PERIODS:
        raise ValueError(f"{key}: period {period!r} is not one of {', '.join(_PERIODS)}")
    return timedelta(**{_PERIODS[period]: int(count)})


def _sets_any(level: Mapping[str, object]) -> bool:
    return any(isinstance(v, timedelta) for v in level.values())


def describe_age(seconds: float) -> str:
    """An age as an operator reads it: ``42 s``, ``12 min``, ``3 h 12 min``, ``2 d 3 h``."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def describe_limits(limits: Limits) -> str:
    """``warn > 26 h, error > 36 h``; ``warn > 24 h, no error``; ``no limit``."""
    warn, error = limits
    if warn is None and error is None:
        return "no limit"
    parts = [
        f"{name} > {describe_age(limit.total_seconds())}" if limit is not None else f"no {name}"
        for name, limit in (("warn", warn), ("error", error))
    ]
    return ", ".join(parts)


def freshness_result(
    table: str,
    verdict: str,
    *,
    age: float | None,
    max_loaded_at: datetime | None,
    limits: Limits,
    error: str | None,
    run_id: str,
    job: str,
    checked_at: datetime,
) -> QualityResult:
    """dbt's verdict on a source table (pass, warn, error, runtime error) as a quality
    result: ``observed`` its age, ``expected`` its limits, ``detail`` its newest
    ``_loaded_at`` or dbt's error."""
    if verdict not in _VERDICTS or age is None or max_loaded_at is None:
        observed, detail = "not measured", " ".join((error or verdict).split())
    elif max_loaded_at.year == 1:  # what dbt puts for the max of an empty table
        observed, detail = "never loaded", "the table has no rows"
    else:
        observed = describe_age(age)
        detail = f"max_loaded_at {max_loaded_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
    return QualityResult(
        run_id=run_id,
        job=job,
        check_name="freshness",
        entity=table,
        status=_VERDICTS.get(verdict, "fail"),
        observed=observed,
        expected=describe_limits(limits),
        detail=detail,
        checked_at=checked_at,
    )
