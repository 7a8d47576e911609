"""Transformation: the dbt project in ``dbt/``, run in-process through dbt's Python
entry point (``dbtRunner``).

The target follows the profile (``local``: dbt-duckdb on the warehouse file; ``gcp``:
dbt-bigquery). dbt's artifacts go to ``<data_dir>/dbt/target``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ey_platform.errors import PlatformError
from ey_platform.settings import Settings

log = logging.getLogger("ey_platform.transform")

DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt"
# A production build: unit tests check the models' logic against fixtures and belong to
# development and CI (tests/integration/test_transform.py), as dbt recommends.
BUILD = ("build", "--exclude-resource-type", "unit_test")


class TransformError(PlatformError):
    """dbt failed: the message lists the failing nodes."""


@dataclass
class DbtOutcome:
    command: str
    seconds: float
    passed: int = 0
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
    env["EYP_WAREHOUSE__BIGQUERY_LOCATION"] = settings.warehouse.bigquery_location
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
    work = settings.data_dir.resolve() / "dbt"
    # No dbt.log: run in-process, dbt drops its file handler without closing it on
    # every run. Its console output (or the error raised here) says what happened.
    argv = [
        *args,
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
        "--log-level-file",
        "none",
    ]
    if quiet:
        argv.insert(0, "--quiet")
    deadline = time.monotonic() + settings.warehouse.lock_timeout
    while True:
        outcome = _invoke(argv, args[0])
        busy = any("lock" in f.lower() for f in outcome.failures)
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
    log.info(
        "transform.done",
        extra={"command": args[0], "passed": outcome.passed, "seconds": outcome.seconds},
    )
    return outcome


def _invoke(argv: list[str], command: str) -> DbtOutcome:
    from dbt.cli.main import dbtRunner

    warnings: list[str] = []

    def on_event(event: Any) -> None:  # dbt's warnings, whatever the log level shown
        if event.info.level == "warn":
            warnings.append(" ".join(event.info.msg.split()))

    started = time.perf_counter()
    result = dbtRunner(callbacks=[on_event]).invoke(argv)
    outcome = DbtOutcome(command, time.perf_counter() - started, warnings=warnings)
    if result.exception is not None:
        outcome.failures.append(f"{type(result.exception).__name__}: {result.exception}")
        return outcome
    for node in _results(result.result):
        status = str(getattr(node, "status", "")).lower()
        if status in {"error", "fail", "runtime error"}:
            name = getattr(getattr(node, "node", None), "name", "?")
            message = " ".join(str(getattr(node, "message", status)).split())  # one line
            outcome.failures.append(f"{name}: {message}")
        else:
            outcome.passed += 1
    if not result.success and not outcome.failures:
        outcome.failures.append("dbt reported a failure; run `ey-platform transform` to see it")
    return outcome


def _results(result: Any) -> list[Any]:
    return list(getattr(result, "results", None) or [])
