"""The ``ey-platform`` command line (see :mod:`.root`)."""

from ey_platform.cli import commands, ops, stream  # noqa: F401 - they register the commands
from ey_platform.cli.root import app, main

__all__ = ["app", "main"]
