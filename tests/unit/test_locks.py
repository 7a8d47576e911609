"""Whether a run's holder is still alive: its pid on this host, its age anywhere."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from ey_platform.locks import holder, holder_alive

HOUR = timedelta(hours=1)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now
    return child.pid


def test_this_process_is_alive_and_a_finished_one_is_not() -> None:
    now = datetime.now(UTC)
    assert holder_alive(holder(), now, HOUR)
    assert not holder_alive(f"{socket.gethostname()}:{_dead_pid()}", now, HOUR)


def test_another_host_is_judged_by_age_alone() -> None:
    now = datetime.now(UTC)
    assert holder_alive("elsewhere:1", now - timedelta(minutes=59), HOUR)
    assert not holder_alive("elsewhere:1", now - timedelta(minutes=61), HOUR)
    assert holder_alive(None, now, HOUR)  # a run recorded before holders were: wait it out


def test_an_old_run_is_dead_even_if_its_pid_lives_again() -> None:
    assert not holder_alive(holder(), datetime.now(UTC) - 2 * HOUR, HOUR)
