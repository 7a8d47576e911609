"""The allocator tuning, measured by the page faults it saves, in fresh processes."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's; elsewhere it is a no-op"
)

# Buffers of 1 to 3 MB, six alive at a time, as the batch holds its texts: the page
# faults of a second pass, once the first has warmed the heap.
_BUFFERS = """
import random, resource, sys
from ey_platform.runtime import tune_allocator
tuned = sys.argv[1] == "tuned" and tune_allocator()
rng = random.Random(1)
def churn():
    held = []
    for _ in range(200):
        held.append(bytes(rng.randint(1 << 20, 3 << 20)))
        if len(held) > 6:
            held.pop(0)
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _BUFFERS, mode], capture_output=True, text=True, check=True
    )
    tuned, faults = out.stdout.split()
    return tuned, int(faults)


def test_freed_buffers_are_reused_instead_of_faulted_in_again() -> None:
    default_tuned, default = _faults("default")
    tuned, faults = _faults("tuned")
    assert (default_tuned, tuned) == ("False", "True")
    assert faults * 5 < default, (faults, default)
