"""The ``ey-platform`` command line: parses arguments, calls :mod:`ey_platform.wiring`
and prints. The commands live in :mod:`.commands` and :mod:`.stream`, what they print
in :mod:`.output`."""

from __future__ import annotations

import errno
import logging
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ey_platform import __version__
from ey_platform.cli.output import console
from ey_platform.errors import ConfigError, PlatformError
from ey_platform.logs import json_lines, setup_logging
from ey_platform.ops.context import job_context
from ey_platform.runtime import tune_allocator
from ey_platform.settings import Settings, load_settings

# Click's plain help: Typer's rich help reads help text as rich markup (it swallows
# "[env: ...]") and gives every flag a type ("--once <bool>"). As wide as the terminal,
# up to 120 columns.
_HELP: dict[str, Any] = {
    "rich_markup_mode": None,
    "no_args_is_help": True,
    "context_settings": {"max_content_width": 120},
}
app = typer.Typer(
    name="ey-platform",
    help="EY Data Platform: FakeStore API -> raw lake -> warehouse -> dbt star schema.",
    pretty_exceptions_enable=False,
    add_completion=False,
    **_HELP,
)
fakestore_app = typer.Typer(help="The bundled FakeStore-compatible server.", **_HELP)
app.add_typer(fakestore_app, name="fakestore")
stream_app = typer.Typer(help="Streaming of cart events: poll, consume, run, status.", **_HELP)
app.add_typer(stream_app, name="stream")

_state: dict[str, Any] = {"debug": False, "data_dir": None, "job": None}
log = logging.getLogger("ey_platform.cli")


def env_hint(variable: str) -> str:
    """The help hint naming the variable behind an option. A no-break space: the help
    formatter wraps at spaces and would split the hint over two lines."""
    return f"[env:\u00a0{variable}]"


class Profile(StrEnum):
    local = "local"
    gcp = "gcp"


class BatchEntity(StrEnum):
    products = "products"
    users = "users"
    all = "all"


ApiUrl = Annotated[
    Optional[str],  # noqa: UP045 - Typer reads the annotation at run time
    typer.Option("--api-url", help=f"FakeStore base URL {env_hint('EYP_API_URL')}."),
]
DataDir = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--data-dir", help=f"Local data folder {env_hint('EYP_DATA_DIR')}."),
]


def _version(value: bool) -> None:
    if value:
        console.print(f"ey-platform {__version__}")
        raise typer.Exit


@app.callback()
def main_options(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    profile: Annotated[
        Optional[Profile],  # noqa: UP045
        typer.Option(
            "--profile", help=f"local or gcp: every backend at once {env_hint('EYP_PROFILE')}."
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """EY Data Platform command line. Settings come from EYP_* variables and .env."""
    _state["debug"] = debug
    if profile is not None:
        # The environment, so that every settings read and dbt's subprocess agree.
        os.environ["EYP_PROFILE"] = profile.value
    setup_logging(_level(), as_json=_json_logs_before_settings())
    _run_as(ctx, ctx.invoked_subcommand)


# The jobs of `stream`'s commands, as logs and metrics name them.
_STREAM_JOBS = {"poll": "poll", "consume": "consume", "run": "stream"}


@stream_app.callback()
def stream_options(ctx: typer.Context) -> None:
    _run_as(ctx, _STREAM_JOBS.get(ctx.invoked_subcommand or "", "stream"))


def _run_as(ctx: typer.Context, job: str | None) -> None:
    """The command's job, for every log line until the command ends."""
    if job is not None and not ctx.resilient_parsing:
        _state["job"] = job
        ctx.with_resource(job_context(job))


def _level() -> int:
    return logging.DEBUG if _state["debug"] else logging.INFO


def _json_logs_before_settings() -> bool:
    """:attr:`Settings.json_logs` from the environment and ``.env`` alone, before the
    settings are read: their warnings are log lines already. :func:`settings` decides
    again from the settings read."""
    found = {name.upper(): value for name, value in _dotenv().items() if value}
    found.update((name.upper(), value) for name, value in os.environ.items() if value)
    chosen = found.get("EYP_LOG__FORMAT", "auto")
    if chosen in ("text", "json"):
        return chosen == "json"
    return found.get("EYP_PROFILE") == "gcp"


def _dotenv() -> dict[str, str | None]:
    """The ``.env`` that the settings read, or nothing if it cannot be read: the settings
    report that, and what python-dotenv finds wrong in it, when they read it."""
    from dotenv import dotenv_values

    parser = logging.getLogger("dotenv.main")
    saved, parser.disabled = parser.disabled, True
    try:
        return dotenv_values(str(Settings.model_config["env_file"]), encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    finally:
        parser.disabled = saved


def settings(**overrides: Any) -> Settings:
    """The settings; their data folder names the place of a disk error without a path.
    The log lines take the format they set (``EYP_LOG__FORMAT``, the profile)."""
    cfg = load_settings(**overrides)
    _state["data_dir"] = cfg.data_dir
    if cfg.json_logs != json_lines():
        setup_logging(_level(), as_json=cfg.json_logs)
    return cfg


Interval = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option(
        "--interval",
        min=0.1,
        help=f"Seconds between polls {env_hint('EYP_STREAM__POLL_INTERVAL')}.",
    ),
]


# What the system says when a file cannot be written (as opposed to found or read).
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def _os_error(exc: OSError) -> str:
    """``cannot write /data/lake/x: No space left on device``. A write to an open file
    fails without a path: then the data folder is named."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    verb = "cannot write" if exc.errno in _WRITE_ERRORS else "cannot access"
    if exc.filename is not None:
        paths = [os.fsdecode(exc.filename)]
        if exc.filename2 is not None:
            paths.append(os.fsdecode(exc.filename2))
        return f"{verb} {' -> '.join(paths)}: {reason}"
    if exc.errno in _WRITE_ERRORS and _state["data_dir"] is not None:
        return f"{verb} under {Path(_state['data_dir']).resolve()}: {reason}"
    return reason


def main() -> None:
    """Entry point: a platform error is one line on stderr and exit code 1 (2 for bad
    configuration), and so is a disk or permission error; ``--debug`` shows the
    traceback. Under JSON log lines that line is a log record (``error``), and so is
    any other exception, with its traceback: stderr holds JSON only."""
    tune_allocator()
    try:
        app(standalone_mode=True, prog_name="ey-platform")  # also for python -m
    except (PlatformError, OSError) as exc:
        if _state["debug"] and not json_lines():
            raise
        message = _os_error(exc) if isinstance(exc, OSError) else str(exc)
        _fail(message, 2 if isinstance(exc, ConfigError) else 1, exc)
    except Exception as exc:
        if not json_lines():
            raise
        _fail(f"{type(exc).__name__}: {exc}", 1, exc, trace=True)


def _fail(message: str, code: int, exc: BaseException, *, trace: bool = False) -> None:
    """``message`` as the command's last line, then exit with ``code``."""
    if json_lines():
        shown = exc if trace or _state["debug"] else None
        with job_context(_state["job"]):  # the command's context has ended
            log.error("error", extra={"error": message}, exc_info=shown)
    else:
        sys.stderr.write(f"error: {message}\n")
    sys.exit(code)
