"""Transformation: the dbt project shipped in the package (``ey_platform/dbt``), run
in-process through dbt's Python entry point (``dbtRunner``).

The target follows the profile (``local``: dbt-duckdb on the warehouse file; ``gcp``:
dbt-bigquery). dbt writes nothing into the project: its artifacts and partial parsing
go to ``<data_dir>/dbt/target``, so the installed package may be read-only.

dbt builds into the private build dataset (``<analytics>_build``, see profiles.yml); the
platform publishes the marts (:data:`MARTS`) only when every test there has passed
(``Warehouse.publish``).

What dbt judged is handed on as data-quality results (``bq_raw._quality_results``):
the outcome of every test of a build (:meth:`DbtOutcome.quality`, also on the
:class:`TransformError` of a failed build), and the freshness of every source
(:func:`source_freshness`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ey_platform.dbt_console import Console
from ey_platform.errors import PlatformError
from ey_platform.ops.freshness import Limits, freshness_result
from ey_platform.settings import Settings
from ey_platform.warehouse.base import QualityResult, QualityStatus, Warehouse
from ey_platform.warehouse.duckdb import LOCK_CONFLICT, open_file

log = logging.getLogger("ey_platform.transform")

# Package data, so that a wheel and an editable install find it alike. A wheel is
# installed unpacked, so this is a directory on disk, which dbt needs.
DBT_PROJECT = Path(__file__).resolve().with_name("dbt")
# A production build: unit tests check the models' logic against fixtures and belong to
# development and CI (tests/integration/test_transform.py), as dbt recommends.
BUILD = ("build", "--exclude-resource-type", "unit_test")
# What a build publishes to the analytics dataset once all its tests pass: the models of
# models/marts. Staging and intermediate views, the snapshot and the tests' relations stay
# in the private build dataset.
MARTS = ("dim_products", "dim_users", "fact_orders", "fact_order_totals")
# What a build keeps from one run to the next: the snapshot's history. A deployment from
# before the build dataset had it in the analytics dataset; it is carried over once.
STATEFUL = ("products_snapshot",)


# Tests of a build, data tests and unit tests alike: their outcomes are quality results.
_TESTS = frozenset({"test", "unit_test"})
_TEST_STATUS: dict[str, QualityStatus] = {"pass": "pass", "warn": "warn", "fail": "fail"}


@dataclass(frozen=True, slots=True)
class NodeResult:
    """What dbt reported of one node it ran."""

    kind: str
    """dbt's resource type: model, snapshot, test, unit_test, source."""
    name: str
    entity: str
    """What the node judges: the model a test tests, the table of a source; else itself."""
    status: str
    """dbt's status, lower case: success, pass, warn, fail, error, skipped, runtime error."""
    message: str | None
    failures: int | None
    """A test's failing rows."""
    finished_at: datetime
    age: float | None = None
    """A source's: seconds from its newest ``loaded_at_field`` to when dbt looked."""
    max_loaded_at: datetime | None = None
    limits: Limits = (None, None)
    """A source's freshness limits, as dbt judged it by."""


@dataclass
class DbtOutcome:
    command: str
    seconds: float
    passed: int | None = None
    """Nodes that passed; None for a command that runs no node (docs generate, parse)."""
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    nodes: list[NodeResult] = field(default_factory=list)

    def quality(self, run_id: str, job: str = "transform") -> list[QualityResult]:
        """The outcome of every test that ran, as data-quality results: a failing test
        is ``fail`` (``warn`` at warn severity), a test that could not run is ``fail``
        with dbt's error. A test skipped because what it tests failed has none: that
        failure fails the transform itself."""
        results = []
        for node in self.nodes:
            if node.kind not in _TESTS or node.status == "skipped":
                continue
            status = _TEST_STATUS.get(node.status, "fail")  # error: the test could not run
            results.append(
                QualityResult(
                    run_id=run_id,
                    job=job,
                    check_name=node.name,
                    entity=node.entity,
                    status=status,
                    observed="error" if node.status == "error" else _rows(node.failures or 0),
                    expected="0 failing rows",
                    detail=None if status == "pass" else node.message,
                    checked_at=node.finished_at,
                )
            )
        return results


def _rows(count: int) -> str:
    return f"{count} failing row" + ("" if count == 1 else "s")


class TransformError(PlatformError):
    """dbt failed: the message lists the failing nodes; ``outcome`` holds what dbt
    reported, the results of the tests that ran included (None: dbt never started)."""

    def __init__(self, message: str, outcome: DbtOutcome | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome


def dbt_environment(settings: Settings) -> dict[str, str]:
    """What profiles.yml and the sources read: the target, the datasets and, locally,
    the warehouse file."""
    target = "local"
    if settings.profile == "gcp":
        target = "gcp_emulator" if settings.gcp.bigquery_endpoint else "gcp"
    env = {"EYP_DBT_TARGET": target, "EYP_DUCKDB_PATH": str(settings.duckdb_path.resolve())}
    if settings.gcp.project:
        env["EYP_GCP__PROJECT"] = settings.gcp.project
    if settings.gcp.bigquery_endpoint:
        env["EYP_GCP__BIGQUERY_ENDPOINT"] = settings.gcp.bigquery_endpoint
    env["EYP_WAREHOUSE__BIGQUERY__LOCATION"] = settings.warehouse.bigquery.location
    env["EYP_WAREHOUSE__RAW_DATASET"] = settings.warehouse.raw_dataset
    env["EYP_WAREHOUSE__ANALYTICS_DATASET"] = settings.warehouse.analytics_dataset
    # dbt builds and tests in the private build dataset; the marts are published after.
    env["EYP_DBT_SCHEMA"] = settings.warehouse.build_dataset
    # The limit on what one query may bill, and the env label of dbt's BigQuery jobs.
    env["EYP_WAREHOUSE__BIGQUERY__MAXIMUM_BYTES_BILLED"] = str(
        settings.warehouse.bigquery.maximum_bytes_billed
    )
    env["EYP_ENVIRONMENT"] = settings.environment
    return env


def run_dbt(
    settings: Settings, *args: str, quiet: bool = False, project: Path = DBT_PROJECT
) -> DbtOutcome:
    """Run one dbt command; raise :class:`TransformError` naming what failed, with the
    outcome attached. Retries while another process holds the DuckDB file, up to the
    warehouse lock timeout."""
    outcome = _run(settings, args, quiet=quiet, project=project)
    if outcome.failures:
        raise _failed(f"dbt {args[0]}", outcome)
    for warning in outcome.warnings:
        log.warning("transform.warning", extra={"command": args[0], "warning": warning})
    counts = {} if outcome.passed is None else {"passed": outcome.passed}
    log.info("transform.done", extra={"command": args[0], **counts, "seconds": outcome.seconds})
    return outcome


def build_and_publish(
    settings: Settings, warehouse: Warehouse, *, quiet: bool = False, full_refresh: bool = False
) -> DbtOutcome:
    """Write, audit, publish: ``dbt build`` (every model and test) in the build dataset,
    then the marts published, only if nothing failed. A failed build raises
    :class:`TransformError` and leaves the published marts as they were.
    ``full_refresh``: dbt rebuilds incremental models from the raw layer."""
    for table in warehouse.carry_into_build(STATEFUL):
        log.info("transform.carried", extra={"table": table, "into": warehouse.build})
    refresh = ("--full-refresh",) if full_refresh else ()
    try:
        outcome = run_dbt(settings, *BUILD, *refresh, quiet=quiet)
    except TransformError as exc:
        message = f"{exc}; nothing published: {warehouse.analytics} keeps the last good build"
        raise TransformError(message, exc.outcome) from None
    try:
        warehouse.publish(MARTS)
    except PlatformError as exc:  # the build passed: its results are still recorded
        raise TransformError(f"publication failed: {exc}", outcome) from None
    log.info("transform.published", extra={"marts": len(MARTS), "to": warehouse.analytics})
    return outcome


def source_freshness(
    settings: Settings,
    *,
    run_id: str,
    job: str = "transform",
    quiet: bool = True,
    project: Path = DBT_PROJECT,
) -> list[QualityResult]:
    """``dbt source freshness`` (results in ``<data_dir>/dbt/target/sources.json``): one
    result per source table whose freshness is checked. A stale source is a result
    (``warn``, or ``fail`` past its error limit), and so is one dbt could not query
    (``fail``, with dbt's error); only dbt failing to run at all raises
    :class:`TransformError`."""
    outcome = _run(settings, ("source", "freshness"), quiet=quiet, project=project)
    if outcome.passed is None:  # no node ran: the project, the profile or dbt failed
        raise _failed("dbt source freshness", outcome)
    results = [
        freshness_result(
            node.entity,
            node.status,
            age=node.age,
            max_loaded_at=node.max_loaded_at,
            limits=node.limits,
            error=node.message,
            run_id=run_id,
            job=job,
            checked_at=node.finished_at,
        )
        for node in outcome.nodes
    ]
    failing = sum(r.status != "pass" for r in results)
    log.info(
        "transform.freshness",
        extra={"sources": len(results), "not_fresh": failing, "seconds": outcome.seconds},
    )
    return results


def _run(settings: Settings, args: tuple[str, ...], *, quiet: bool, project: Path) -> DbtOutcome:
    """One dbt command, retried while another process holds the DuckDB file."""
    if not (project / "dbt_project.yml").exists():
        raise TransformError(f"no dbt project at {project}")
    os.environ.update(dbt_environment(settings))
    argv = _argv(args, project, settings.data_dir.resolve() / "dbt", quiet=quiet)
    deadline = time.monotonic() + settings.warehouse.duckdb.lock_timeout
    while True:
        with _opened_first(settings):
            outcome = _invoke(argv, args[0], quiet=quiet)
        busy = any(sign in f for f in outcome.failures for sign in LOCK_CONFLICT)
        if not busy or time.monotonic() > deadline:
            return outcome
        log.warning("transform.busy", extra={"retry_in": 1.0})
        time.sleep(1.0)


def _failed(what: str, outcome: DbtOutcome) -> TransformError:
    shown = "; ".join(outcome.failures[:5])
    more = len(outcome.failures) - 5
    return TransformError(
        f"{what} failed: {shown}" + (f" (+{more} more)" if more > 0 else ""), outcome
    )


def _argv(args: tuple[str, ...], project: Path, work: Path, *, quiet: bool) -> list[str]:
    """dbt's arguments: ``args``, and what makes an in-process run leave no trace in the
    (read-only) project.

    No dbt.log: run in-process, dbt drops its file handler without closing it on every
    run. Its console is off too: :class:`~ey_platform.dbt_console.Console` prints
    its lines instead. No usage statistics,
    whatever the environment says: they keep a cookie (.user.yml) in the profiles
    directory, which is the read-only project."""
    argv = [
        *args,
        "--no-send-anonymous-usage-stats",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
        "--log-level",
        "none",
        "--log-level-file",
        "none",
    ]
    return ["--quiet", *argv] if quiet else argv


@contextmanager
def _opened_first(settings: Settings) -> Iterator[None]:
    """Locally, the warehouse file held open through the dbt run. dbt-duckdb opens it with
    a ``duckdb.connect`` of its own, outside the warehouse's opening lock; with the file
    already open in the process, dbt only joins the open database and never races
    another thread (the consumer of ``up``) to create it (see ``open_file``)."""
    if settings.profile == "gcp":
        yield
        return
    import duckdb

    try:
        con = open_file(settings.duckdb_path.resolve())
    except duckdb.Error:  # held by another process: dbt meets it too, and is retried
        yield
        return
    try:
        yield
    finally:
        con.close()


def _invoke(argv: list[str], command: str, *, quiet: bool) -> DbtOutcome:
    from dbt.cli.main import dbtRunner

    console = Console(quiet=quiet)
    started = time.perf_counter()
    try:
        result = dbtRunner(callbacks=[console]).invoke(argv)
    finally:
        _close_duckdb()
    outcome = DbtOutcome(command, time.perf_counter() - started, warnings=console.warnings)
    if result.exception is not None:
        # The error line says what failed; the traceback is for --debug.
        log.debug("transform.exception", exc_info=result.exception)
        message = " ".join(str(result.exception).split())  # one line
        outcome.failures.append(f"{type(result.exception).__name__}: {message}")
        return outcome
    nodes = getattr(result.result, "results", None)
    if nodes is not None:  # a command that runs nodes (build, run, test, source freshness)
        outcome.nodes = [_node_result(node) for node in nodes]
        failed = [n for n in outcome.nodes if n.status in {"error", "fail", "runtime error"}]
        outcome.failures += [
            f"{n.name}: {' '.join((n.message or n.status).split())}" for n in failed
        ]
        outcome.passed = len(outcome.nodes) - len(failed)
    if not result.success and not outcome.failures:
        outcome.failures.append("dbt reported a failure; run `ey-platform transform` to see it")
    return outcome


def _close_duckdb() -> None:
    """Close the DuckDB file dbt-duckdb keeps open after a run (its ``keep_open``), so
    that a process that goes on (``ey-platform up``) does not hold the warehouse's lock
    and every other process out of it until it ends."""
    import duckdb
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    environment = getattr(DuckDBConnectionManager, "_ENV", None)
    DuckDBConnectionManager.close_all_connections()  # type: ignore[no-untyped-call]
    if environment is None:
        return
    try:
        environment.close()
    except duckdb.Error as exc:  # the run's own outcome matters more than this close
        log.debug("transform.close_failed", extra={"error": str(exc)})


def _node_result(result: Any) -> NodeResult:
    """dbt's result of a node (a RunResult, a SourceFreshnessResult), read by attribute."""
    node = getattr(result, "node", None)
    timing = getattr(result, "timing", None) or []
    finished = getattr(timing[-1], "completed_at", None) if timing else None
    return NodeResult(
        kind=str(getattr(node, "resource_type", "?")),
        name=str(getattr(node, "name", "?")),
        entity=_entity(node),
        status=str(getattr(result, "status", "")).lower(),
        message=getattr(result, "message", None),
        failures=getattr(result, "failures", None),
        # dbt's timings are naive UTC
        finished_at=finished.replace(tzinfo=UTC) if finished else datetime.now(UTC),
        age=getattr(result, "age", None),
        max_loaded_at=getattr(result, "max_loaded_at", None),
        limits=_limits(getattr(node, "freshness", None)),
    )


def _entity(node: Any) -> str:
    """The model (snapshot, source table) a test tests, or the node's own name."""
    tested = getattr(node, "attached_node", None) or getattr(node, "tested_node_unique_id", None)
    if tested is None and str(getattr(node, "resource_type", "")) == "test":
        depends = getattr(getattr(node, "depends_on", None), "nodes", None) or []
        tested = depends[0] if depends else None
    return str(tested).rsplit(".", 1)[-1] if tested else str(getattr(node, "name", "?"))


def _limits(threshold: Any) -> Limits:
    """dbt's FreshnessThreshold as (warn_after, error_after)."""

    def limit(time_: Any) -> timedelta | None:
        count, period = getattr(time_, "count", None), getattr(time_, "period", None)
        return None if count is None or period is None else timedelta(**{f"{period.value}s": count})

    return (
        limit(getattr(threshold, "warn_after", None)),
        limit(getattr(threshold, "error_after", None)),
    )
