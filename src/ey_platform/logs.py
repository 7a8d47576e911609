"""Logging: one line per event, ``key=value`` pairs after the message, to stderr."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """``2026-11-26T16:00:00Z INFO batch.load entity=users rows=10 seconds=0.12``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = {k: v for k, v in record.__dict__.items() if k not in _RESERVED}
        if extra:
            line += " " + " ".join(f"{k}={_fmt(v)}" for k, v in extra.items())
        return line


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    return f'"{text}"' if " " in text else text


class ConsoleHandler(logging.Handler):
    """Writes formatted records through a rich Console, so that a live display on that
    console (a progress bar) is redrawn below each line instead of being torn by it."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        from rich.text import Text

        try:
            # Text, not str: no markup or highlighting; soft_wrap keeps a line copyable.
            self.console.print(Text(self.format(record)), soft_wrap=True)
        except Exception:
            self.handleError(record)


@contextmanager
def logging_through(console: Console) -> Iterator[None]:
    """Route the records that the handlers on stderr write through ``console`` instead
    (same format and level), then put those handlers back."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = [_through(handler, console) for handler in saved]
    try:
        yield
    finally:
        root.handlers[:] = saved


def _through(handler: logging.Handler, console: Console) -> logging.Handler:
    if type(handler) is not logging.StreamHandler or handler.stream not in _stderr():
        return handler
    replacement = ConsoleHandler(console)
    replacement.setFormatter(handler.formatter)
    replacement.setLevel(handler.level)
    return replacement


def _stderr() -> tuple[object, ...]:
    return (sys.stderr, sys.__stderr__)


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
