"""Job locks: two runs of the same job on one machine never overlap."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
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
