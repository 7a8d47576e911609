"""Job locks: two runs of the same job on one machine never overlap."""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ey_platform.errors import PipelineBusy


@contextmanager
def job_lock(path: Path, job: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` or fail at once, naming the holder.

    The kernel releases the lock when the process dies, so a crash never leaves a stale
    lock behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "unknown process"
            raise PipelineBusy(
                f"another {job} run is in progress ({holder}; lock {path}): wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}".encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


def holder() -> str:
    """Who runs this process, as stored with a run: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_alive(holder: str | None, started_at: datetime, stale_after: timedelta) -> bool:
    """Whether the process ``holder`` (see :func:`holder`) may still be running a job it
    started at ``started_at``. A job older than ``stale_after`` is dead (a pid may have been
    reused since); a younger one is, on this host, if its pid is gone."""
    if datetime.now(UTC) - started_at >= stale_after:
        return False
    host, _, pid = (holder or "").rpartition(":")
    return host != socket.gethostname() or not pid.isdigit() or pid_alive(int(pid))


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
