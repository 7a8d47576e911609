"""The ``ey-platform`` command line (see :mod:`.root`)."""

from ey_platform.cli import (  # noqa: F401 - they register the commands
    commands,
    dashboard,
    ops,
    serving,
    stream,
)
from ey_platform.cli.root import app, main

__all__ = ["app", "main"]
