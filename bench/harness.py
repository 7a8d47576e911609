"""Shared parts of the benchmarks: a bundled server in its own process, a child process
per measurement (so peak RSS is the measured code's own), and the machine's description.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ey_platform.source.server import free_port


@contextmanager
def bundled_server(*args: str, ready_timeout: float = 600) -> Iterator[str]:
    """``ey-platform fakestore serve`` in its own process, on a free loopback port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ey_platform", "fakestore", "serve", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    try:
        while True:
            try:
                httpx.get(f"{url}/products/1", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bundled server did not start: {args}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_child(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m <module> <args>``; it prints one JSON object as its last line."""
    out = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{module} {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with Path("/proc/cpuinfo").open() as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


@dataclass
class Result:
    """One benchmark's figures, rendered as a section of RESULTS.md."""

    name: str
    summary: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    verdict: str = ""

    def markdown(self) -> str:
        lines = [f"## {self.name}", "", self.summary, ""]
        if self.rows:
            keys = list(self.rows[0])
            lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in self.rows]
        if self.verdict:
            lines += ["", self.verdict]
        return "\n".join(lines) + "\n"
