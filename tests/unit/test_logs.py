"""Logging through a rich Console while a progress bar is live, plain lines otherwise."""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterator

import pytest
from rich.console import Console
from rich.progress import Progress

from ey_platform.logs import KeyValueFormatter, logging_through, setup_logging

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
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    setup_logging()
    logging.getLogger().handlers += saved
    return sys.stderr


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
