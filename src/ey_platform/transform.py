"""Transformation: the dbt project shipped in the package (``ey_platform/dbt``), run
in-process through dbt's Python entry point (``dbtRunner``).

The target follows the profile (``local``: dbt-duckdb on the warehouse file; ``gcp``:
dbt-bigquery). dbt writes nothing into the project: its artifacts and partial parsing
go to ``<data_dir>/dbt/target``, so the installed package may be read-only.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ey_platform.errors import PlatformError
from ey_platform.settings import Settings
from ey_platform.warehouse.duckdb import LOCK_CONFLICT, open_file

log = logging.getLogger("ey_platform.transform")

# Package data, so that a wheel and an editable install find it alike. A wheel is
# installed unpacked, so this is a directory on disk, which dbt needs.
DBT_PROJECT = Path(__file__).resolve().with_name("dbt")
# A production build: unit tests check the models' logic against fixtures and belong to
# development and CI (tests/integration/test_transform.py), as dbt recommends.
BUILD = ("build", "--exclude-resource-type", "unit_test")


class TransformError(PlatformError):
    """dbt failed: the message lists the failing nodes."""


@dataclass
class DbtOutcome:
    command: str
    seconds: float
    passed: int | None = None
    """Nodes that passed; None for a command that runs no node (docs generate, parse)."""
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


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
    return env


def run_dbt(
    settings: Settings, *args: str, quiet: bool = False, project: Path = DBT_PROJECT
) -> DbtOutcome:
    """Run one dbt command; raise :class:`TransformError` naming what failed. Retries
    while another process holds the DuckDB file, up to the warehouse lock timeout."""
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
            break
        log.warning("transform.busy", extra={"retry_in": 1.0})
        time.sleep(1.0)
    if outcome.failures:
        raise TransformError(
            f"dbt {args[0]} failed: "
            + "; ".join(outcome.failures[:5])
            + (f" (+{len(outcome.failures) - 5} more)" if len(outcome.failures) > 5 else "")
        )
    for warning in outcome.warnings:
        log.warning("transform.warning", extra={"command": args[0], "warning": warning})
    counts = {} if outcome.passed is None else {"passed": outcome.passed}
    log.info("transform.done", extra={"command": args[0], **counts, "seconds": outcome.seconds})
    return outcome


def _argv(args: tuple[str, ...], project: Path, work: Path, *, quiet: bool) -> list[str]:
    """dbt's arguments: ``args``, and what makes an in-process run leave no trace in the
    (read-only) project.

    No dbt.log: run in-process, dbt drops its file handler without closing it on every
    run. Its console is off too: _Console prints its lines instead. No usage statistics,
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

    console = _Console(quiet=quiet)
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
    if nodes is not None:  # a command that runs nodes (build, run, test)
        outcome.passed = _tally(nodes, outcome.failures)
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


def _tally(nodes: list[Any], failures: list[str]) -> int:
    """Add the failed nodes to ``failures``; return how many passed."""
    passed = 0
    for node in nodes:
        status = str(getattr(node, "status", "")).lower()
        if status in {"error", "fail", "runtime error"}:
            name = getattr(getattr(node, "node", None), "name", "?")
            message = " ".join(str(getattr(node, "message", status)).split())  # one line
            failures.append(f"{name}: {message}")
        else:
            passed += 1
    return passed


# dbt's report of an exception (its message, then its traceback): the exception itself
# becomes the TransformError, on stderr. The cache events dbt's own console skips too.
_UNSHOWN = frozenset({"MainEncounteredError", "MainStackTrace", "CacheAction", "CacheDumpGraph"})
# Output a command prints as is, at any log level (dbt's own console does the same).
_PRINTED = frozenset({"PrintEvent", "ShowNode", "CompiledNode"})
_LEVELS = {"debug": 0, "test": 0, "info": 1, "warn": 2, "error": 3}


class _Console:
    """dbt's console output, drawn from its events as dbt draws it (``HH:MM:SS  message``,
    info and above, errors only when quiet) without its report of an exception; and the
    warnings dbt fired, shown or not."""

    def __init__(self, *, quiet: bool) -> None:
        self.threshold = _LEVELS["error" if quiet else "info"]
        self.warnings: list[str] = []
        self._lock = threading.Lock()  # dbt fires events from its worker threads
        self._open = True

    def __call__(self, event: Any) -> None:
        from dbt_common.events.functions import env_scrubber

        info = event.info
        if info.level == "warn":
            self.warnings.append(" ".join(info.msg.split()))
        if info.name in _UNSHOWN:
            return
        if info.name in _PRINTED:
            line = info.msg
        elif _LEVELS.get(info.level, 0) >= self.threshold:
            line = f"{datetime.now(UTC):%H:%M:%S}  {info.msg}"
        else:
            return
        with self._lock:
            if not self._open:
                return
            try:
                sys.stdout.write(env_scrubber(line) + "\n")
                sys.stdout.flush()
            except (OSError, ValueError):  # stdout went away (`| head`): dbt carries on
                self._open = False
