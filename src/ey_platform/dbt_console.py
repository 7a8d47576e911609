"""dbt's console output, drawn from the events of an in-process run as dbt draws it, and
the warnings it fired (:class:`Console`)."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
from typing import Any

# dbt's report of an exception (its message, then its traceback): the exception itself
# becomes the TransformError, on stderr. The cache events dbt's own console skips too.
_UNSHOWN = frozenset({"MainEncounteredError", "MainStackTrace", "CacheAction", "CacheDumpGraph"})
# Output a command prints as is, at any log level (dbt's own console does the same).
_PRINTED = frozenset({"PrintEvent", "ShowNode", "CompiledNode"})
_LEVELS = {"debug": 0, "test": 0, "info": 1, "warn": 2, "error": 3}


class Console:
    """dbt's console output, drawn from its events as dbt draws it (``HH:MM:SS  message``,
    info and above, errors only when quiet) without its report of an exception; and the
    warnings dbt fired, shown or not."""

    def __init__(self, *, quiet: bool) -> None:
        self.threshold = _LEVELS["error" if quiet else "info"]
        self.warnings: list[str] = []
        self._lock = threading.Lock()  # dbt fires events from its worker threads
        self._open = True

    def __call__(self, event: Any) -> None:
        from dbt_common.events.functions import env_scrubber

        info = event.info
        if info.level == "warn":
            self.warnings.append(" ".join(info.msg.split()))
        if info.name in _UNSHOWN:
            return
        if info.name in _PRINTED:
            line = info.msg
        elif _LEVELS.get(info.level, 0) >= self.threshold:
            line = f"{datetime.now(UTC):%H:%M:%S}  {info.msg}"
        else:
            return
        with self._lock:
            if not self._open:
                return
            try:
                sys.stdout.write(env_scrubber(line) + "\n")
                sys.stdout.flush()
            except (OSError, ValueError):  # stdout went away (`| head`): dbt carries on
                self._open = False
