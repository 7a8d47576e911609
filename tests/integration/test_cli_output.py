"""What a person sees in a terminal: help, the batch's progress bar, tables at 80 columns."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import shlex
import shutil
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer.main
from rich.console import Console

from ey_platform import cli
from ey_platform.cli import output
from ey_platform.pipelines.batch import BatchResult
from tests.conftest import FakeStore

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")
_HINT = re.compile(r"\[env:\s(EYP_\w+)\]")
RUN_ID = "20261126T160000Z-3fa2c1"


def in_terminal(args: list[str], columns: int, timeout: float = 60) -> str:
    """Run the CLI on a pseudo-terminal ``columns`` wide; what it wrote, escapes removed."""
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ey_platform", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env={**os.environ, "COLUMNS": str(columns), "TERM": "xterm-256color"},
    )
    os.close(child)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([parent], [], [], 0.1)[0]:
                try:
                    data = os.read(parent, 1 << 16)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
    finally:
        os.close(parent)
        proc.wait(timeout=10)
    return _ANSI.sub("", b"".join(chunks).decode())


def _commands() -> Iterator[tuple[list[str], Any]]:
    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(cli.app), [])


@pytest.mark.parametrize(
    ("path", "command"),
    [pytest.param(path, command, id=" ".join(path) or "-") for path, command in _commands()],
)
@pytest.mark.parametrize("columns", [80, 120])
def test_help_shows_each_env_hint_whole_and_no_flag_type(
    path: list[str], command: Any, columns: int
) -> None:
    shown = in_terminal([*path, "--help"], columns)
    assert "Usage: ey-platform" in shown
    hints = {m for p in command.params for m in _HINT.findall(getattr(p, "help", None) or "")}
    assert set(_HINT.findall(shown)) == hints  # each on one line, none cut
    assert "<bool>" not in shown
    flags = [p.opts[0] for p in command.params if getattr(p, "is_flag", False)]
    for flag in flags:
        assert re.search(rf"^\s+{flag}\s\s", shown, re.M), flag  # no type after a flag
    assert max(len(line) for line in shown.splitlines()) <= columns


@pytest.fixture
def tmux() -> Iterator[list[str]]:
    """A tmux server of this test's own: a terminal whose screen can be read back."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: no terminal emulator to read the screen of")
    command = ["tmux", "-L", f"eyp-test-{os.getpid()}-{time.monotonic_ns()}", "-f", "/dev/null"]
    yield command
    subprocess.run([*command, "kill-server"], capture_output=True, check=False)


def _screen(tmux: list[str], command: list[str], columns: int) -> str:
    """Run ``command`` in a tmux window ``columns`` wide; the screen and scrollback once
    it has exited, each line as it is shown (wrapped lines joined)."""
    shell = f"{shlex.join(command)}; echo EXIT=$?; sleep 600"
    subprocess.run([*tmux, "new-session", "-d", "-x", str(columns), "-y", "50", shell], check=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        screen = subprocess.run(
            [*tmux, "capture-pane", "-p", "-J", "-S", "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if "EXIT=" in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"no exit within 120 s:\n{screen}")


def test_batch_in_a_terminal_draws_a_bar_per_entity_below_whole_log_lines(
    fakestore: FakeStore, tmp_path: Path, tmux: list[str]
) -> None:
    fakestore.faults("latency=0.3")  # slow enough for the bar to be drawn between log lines
    batch = [sys.executable, "-m", "ey_platform", "batch", "--api-url", fakestore.url]
    screen = _screen(tmux, [*batch, "--data-dir", str(tmp_path / "data")], 80)
    assert "EXIT=0" in screen, screen
    lines = screen.splitlines()
    logs = [i for i, line in enumerate(lines) if " INFO ey_platform." in line]
    bars = [i for i, line in enumerate(lines) if "records/s" in line]
    assert len(bars) == 2 and logs and max(logs) < min(bars), screen  # no bar among the logs
    for i in logs:  # each log line whole: nothing drawn over it
        assert re.fullmatch(r"\S+ INFO ey_platform\.\w+ [\w.]+( \w+=\S+)*", lines[i]), lines[i]
    products, users = (lines[i] for i in bars)
    assert re.match(r"products +━+ 20 records +[\d,]+ records/s +\d:\d\d:\d\d$", products)
    assert re.match(r"users +━+ 10 records +[\d,]+ records/s +\d:\d\d:\d\d$", users)
    assert re.search(r"Batch \d{4}-\d\d-\d\d \(run \d{8}T\d{6}Z-[0-9a-f]{6}\)", screen)
    assert "…" not in screen


def test_a_bar_shows_the_total_when_the_pipeline_gives_it() -> None:
    out = io.StringIO()
    bars = output._Bars(Console(file=out, width=100, force_terminal=True))
    with bars.bar:
        bars.update("products", 500, total=2_000)
        bars.bar.refresh()
        assert re.search(r"products .* 500 / 2,000 records", _ANSI.sub("", out.getvalue()))
        bars.update("users", 10)  # products is done: its clock stops
        bars.finish(complete=True)
        elapsed = [bars.bar.tasks[0].elapsed, bars.bar.tasks[1].elapsed]
        time.sleep(0.05)
        assert [bars.bar.tasks[0].elapsed, bars.bar.tasks[1].elapsed] == elapsed
        assert bars.bar.tasks[1].finished and not bars.bar.tasks[0].finished  # 500 of 2,000


def _print(monkeypatch: pytest.MonkeyPatch, printer: Any, *args: Any) -> list[str]:
    out = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=out, width=80))
    printer(*args)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in out.getvalue()
    return lines


def test_the_batch_table_keeps_numbers_and_ids_whole_at_80_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    day = date(2026, 11, 26)
    counts = {"extracted": 200_000, "valid": 199_990, "quarantined": 10, "landed": 199_990}
    results = [
        BatchResult("products", day, RUN_ID, "loaded", loaded=199_990, seconds=12.5, **counts),
        BatchResult("users", day, RUN_ID, "unchanged", loaded=0, seconds=1234.56, **counts),
    ]
    shown = "\n".join(_print(monkeypatch, output.print_batch, results))
    assert f"Batch 2026-11-26 (run {RUN_ID})" in shown
    assert shown.count("200,000") == 2 and shown.count("199,990") == 3
    assert "1234.56" in shown and "unchanged" in shown


def test_a_number_too_wide_for_80_columns_folds_instead_of_being_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    huge = 123_456_789_012_345
    counts = dict.fromkeys(["extracted", "valid", "quarantined", "landed", "loaded"], huge)
    results = [BatchResult(e, date(2026, 11, 26), RUN_ID, "loaded", **counts) for e in "ab"]
    lines = _print(monkeypatch, output.print_batch, results)
    assert sum(line.startswith("│") for line in lines) > len(results)  # the rows did fold
    for column in range(2, 6):  # every digit is there, read down the column
        assert _down(lines, column) == f"{huge:,}" * 2


def _down(lines: list[str], column: int) -> str:
    """A column of a printed table read top to bottom, its folded cells joined."""
    body = [line.split("│")[1:-1] for line in lines if line.startswith("│")]
    return "".join(cells[column].strip() for cells in body)


def test_the_summary_tables_fold_a_long_name_instead_of_cutting_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = "bq_raw_europe_west_production_environment.carts_events_streaming_v2"
    summary = SimpleNamespace(
        layers=[("raw", events, 1_234_567), ("marts", "fact_orders", 7)],
        reconciled=True,
        source_carts=7,
        event_carts=7,
        events_table=events,
        fact_carts=7,
        revenue=[("women's clothing", 98_765_432.1, 1_234_567)],
        total_revenue=98_765_432.1,
    )
    lines = _print(monkeypatch, output.print_summary, summary)
    layers = lines[: next(i for i, line in enumerate(lines) if line.startswith("└"))]
    assert _down(layers, 1) == f"{events}fact_orders"
    assert _down(layers, 2) == "1,234,5677"
    assert "98,765,432.10" in "\n".join(lines)
