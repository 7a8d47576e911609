"""Logging through a rich Console while a progress bar is live, plain lines otherwise;
JSON lines for Cloud Logging, and the CLI's choice between the two."""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console
from rich.progress import Progress

from ey_platform.logs import (
    KeyValueFormatter,
    json_lines,
    logging_through,
    setup_logging,
    severity,
)
from ey_platform.ops.context import job_context
from ey_platform.settings import load_settings

log = logging.getLogger("ey_platform.test")
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, as it was once the test is over."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    yield root
    root.handlers[:], root.level = saved, level


def _cli_logging(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The CLI's logging on a stderr of the test's own (in the test: pytest swaps
    sys.stderr between setup and call), pytest's capture handlers kept beside it."""
    saved = logging.getLogger().handlers[:]
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    setup_logging()
    logging.getLogger().handlers += saved
    return stderr


def test_records_go_through_the_console_of_a_live_bar_then_back(
    root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = _cli_logging(monkeypatch)
    plain = root_logger.handlers[0]
    out = io.StringIO()
    bar = Progress(console=Console(file=out, force_terminal=True, width=100), auto_refresh=False)
    with logging_through(bar.console), bar:
        task = bar.add_task("products", total=10)
        bar.update(task, completed=5)
        bar.refresh()
        log.info("batch.land", extra={"entity": "products", "rows": 5})
    log.info("batch.done")
    screen = _CONTROL.sub("", out.getvalue())
    # The line is whole, in the same key=value format, above the bar drawn again below it.
    before, line, after = screen.partition("batch.land entity=products rows=5\n")
    assert line and re.search(r"\n?\S+ INFO ey_platform\.test $", before)
    assert "products" in after and "50%" in after
    assert root_logger.handlers[0] is plain
    assert "batch.land" not in stderr.getvalue() and "batch.done" in stderr.getvalue()


def test_a_long_line_is_not_cut_at_the_console_width(
    root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = _cli_logging(monkeypatch)
    out = io.StringIO()
    with logging_through(Console(file=out, width=40)):
        log.warning("x" * 100)
    assert "x" * 100 in out.getvalue() and not stderr.getvalue()
    assert isinstance(root_logger.handlers[0].formatter, KeyValueFormatter)


# JSON lines, as Cloud Logging reads them.

_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def json_stderr(
    root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> Iterator[io.StringIO]:
    """The CLI's JSON logging on a stderr of the test's own; Python's warnings given
    back to the warnings module afterwards."""
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    setup_logging(logging.DEBUG, as_json=True)
    yield stderr
    logging.captureWarnings(False)


def _lines(stderr: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stderr.getvalue().splitlines()]


def test_a_json_line_has_cloud_loggings_fields_and_the_extra_ones(
    json_stderr: io.StringIO,
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    with job_context("batch", "20261202T050000Z-3fa2c1"):
        log.warning(
            "batch.held %s",
            "users",
            extra={
                "entity": "users",
                "rows": 4,
                "share": 0.4,
                "day": date(2026, 12, 2),
                "at": datetime(2026, 12, 2, 5, 0, tzinfo=UTC),
                "path": Path("/data/lake"),
                "kinds": {"json"},
            },
        )
    (line,) = _lines(json_stderr)
    assert line == {
        "severity": "WARNING",
        "message": "batch.held users",  # with its arguments
        "time": line["time"],
        "logger": "ey_platform.test",
        "job": "batch",
        "run_id": "20261202T050000Z-3fa2c1",
        "entity": "users",
        "rows": 4,
        "share": 0.4,
        "day": "2026-12-02",
        "at": "2026-12-02T05:00:00+00:00",
        "path": "/data/lake",
        "kinds": "{'json'}",
    }
    assert _TIME.fullmatch(line["time"])
    written = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    assert before <= written <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (logging.DEBUG, "DEBUG"),
        (logging.INFO, "INFO"),
        (logging.WARNING, "WARNING"),
        (logging.ERROR, "ERROR"),
        (logging.CRITICAL, "CRITICAL"),
        (25, "INFO"),  # a custom level: the standard one below it
        (5, "DEBUG"),
    ],
)
def test_each_level_has_its_cloud_logging_severity(level: int, expected: str) -> None:
    assert severity(level) == expected


def test_a_traceback_is_one_line_stack_trace_and_the_context_is_the_blocks(
    json_stderr: io.StringIO,
) -> None:
    try:
        raise ValueError("bad\nanswer")
    except ValueError:
        with job_context("poll"):
            log.exception("poll.crashed\nsecond line")
    log.info("after", extra={"job": "consume"})  # given with the call: it wins
    assert len(json_stderr.getvalue().splitlines()) == 2
    crashed, after = _lines(json_stderr)
    assert crashed["severity"] == "ERROR" and crashed["job"] == "poll"
    assert crashed["message"] == "poll.crashed\nsecond line" and "run_id" not in crashed
    assert crashed["stack_trace"].startswith("Traceback (most recent call last):")
    assert crashed["stack_trace"].endswith("ValueError: bad\nanswer")
    assert after["job"] == "consume" and "stack_trace" not in after


def test_the_four_fields_cloud_logging_reads_are_never_overwritten(
    json_stderr: io.StringIO,
) -> None:
    log.info("batch.done", extra={"severity": "DEBUG", "time": "yesterday", "logger": "x"})
    (line,) = _lines(json_stderr)
    assert line["severity"] == "INFO" and _TIME.fullmatch(line["time"])
    assert line["logger"] == "ey_platform.test"


def test_a_value_json_cannot_hold_is_written_as_text(json_stderr: io.StringIO) -> None:
    log.info("big", extra={"rows": 2**70, "ok": True})
    (line,) = _lines(json_stderr)
    assert line["rows"] == str(2**70) and line["ok"] is True


def test_under_json_pythons_warnings_are_log_lines_too(json_stderr: io.StringIO) -> None:
    assert json_lines()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
    (line,) = _lines(json_stderr)
    assert line["severity"] == "WARNING" and line["logger"] == "py.warnings"
    assert "DeprecationWarning: old API" in line["message"]


def test_text_lines_name_the_job_and_run_inside_a_run_only(
    root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = _cli_logging(monkeypatch)
    assert not json_lines()
    with job_context("config"):
        log.warning("outside a run", extra={"entity": "users"})
    with job_context("batch", "20261202T050000Z-3fa2c1"):
        log.info("batch.done", extra={"entity": "users", "rows": 10})
    outside, inside = stderr.getvalue().splitlines()
    assert outside.endswith(" WARNING ey_platform.test outside a run entity=users")
    assert inside.endswith(
        " INFO ey_platform.test batch.done entity=users rows=10 job=batch "
        "run_id=20261202T050000Z-3fa2c1"
    )


def test_no_progress_bar_under_json_even_on_a_terminal(
    root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ey_platform.cli.output import progress_bar

    parent, child = pty.openpty()
    with os.fdopen(child, "w") as terminal, os.fdopen(parent, "rb", buffering=0):
        monkeypatch.setattr(sys, "stderr", terminal)
        setup_logging()
        with progress_bar() as shown:
            assert shown is not None  # text on a terminal: the bar
        setup_logging(as_json=True)
        with progress_bar() as shown:
            assert shown is None
    logging.captureWarnings(False)


@pytest.mark.parametrize(
    ("environ", "dotenv", "expected"),
    [
        ({}, "", False),
        ({"EYP_PROFILE": "gcp"}, "", True),
        ({"EYP_PROFILE": "gcp", "EYP_LOG__FORMAT": "text"}, "", False),
        ({"EYP_LOG__FORMAT": "json"}, "", True),
        ({}, "EYP_LOG__FORMAT=json\n", True),
        ({}, "eyp_profile=gcp\n", True),  # names are not case-sensitive
        ({"EYP_LOG__FORMAT": "text"}, "EYP_LOG__FORMAT=json\n", False),  # environment wins
        ({"EYP_LOG__FORMAT": ""}, "EYP_LOG__FORMAT=json\n", True),  # blank: not set
    ],
)
def test_the_cli_picks_the_format_before_the_settings_as_they_would(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    environ: dict[str, str],
    dotenv: str,
    expected: bool,
) -> None:
    from ey_platform.cli.root import _json_logs_before_settings

    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    (tmp_path / ".env").write_text(dotenv)
    assert _json_logs_before_settings() is expected
    assert load_settings().json_logs is expected  # what the settings then decide


def test_an_unreadable_dotenv_leaves_the_choice_to_the_settings(tmp_path: Path) -> None:
    from ey_platform.cli.root import _json_logs_before_settings

    (tmp_path / ".env").write_bytes(b"EYP_LOG__FORMAT=\xff\n")
    assert _json_logs_before_settings() is False
