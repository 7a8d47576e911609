"""The job and run a piece of work belongs to, for every log line and BigQuery job it
makes: ``with job_context("batch", run_id):``. Context variables, so a thread of ``up``
(the poller, the consumer) carries its own."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

_job: ContextVar[str | None] = ContextVar("job", default=None)
_run_id: ContextVar[str | None] = ContextVar("run_id", default=None)


def new_run_id(now: datetime) -> str:
    """Sortable by time, unique across machines: ``20261126T160000Z-3fa2c1``."""
    return f"{now:%Y%m%dT%H%M%S}Z-{secrets.token_hex(3)}"


def current_job() -> str | None:
    return _job.get()


def current_run_id() -> str | None:
    return _run_id.get()


@contextmanager
def job_context(job: str | None = None, run_id: str | None = None) -> Iterator[None]:
    """Inside the block, the current job is ``job`` and the current run ``run_id``; an
    argument left None keeps the value around the block."""
    tokens = []
    if job is not None:
        tokens.append((_job, _job.set(job)))
    if run_id is not None:
        tokens.append((_run_id, _run_id.set(run_id)))
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)
