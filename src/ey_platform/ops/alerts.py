"""Alerts: one message when an incident opens, one when it ends, none in between.

An incident is a named condition (``batch.failed``, ``batch.held:users``,
``stream.backlog``)
kept in ``bq_raw._incidents``, so that the runs of a job in separate processes (a Cloud
Run job keeps nothing between executions) agree on what was already said. Its opening
is sent to the webhook (``EYP_ALERTS__WEBHOOK_URL``: Slack and Google Chat both take
``{"text": ...}``) with what failed and what to do; while it lasts, more occurrences
send nothing; when the condition is seen to be gone, its end is announced once.

Alerting never fails the job that alerts: a webhook that refuses, times out or is
unreachable is logged (``alert.failed``) and tried again at the next occurrence; a
warehouse that cannot be read or written is logged and the alert is sent anyway
(a repeat is better than silence).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from ey_platform.errors import PlatformError
from ey_platform.warehouse.base import Incident, Warehouse

log = logging.getLogger("ey_platform.alerts")

REREAD = 300.0
"""Seconds an instance trusts its copy of the open incidents."""


class Notifier(Protocol):
    def send(self, text: str) -> bool:
        """Deliver ``text``; False (and logged) if it was not taken."""


class Webhook:
    """An incoming webhook. Its URL is a secret: it is never logged."""

    def __init__(self, url: SecretStr, timeout: float = 5.0) -> None:
        self._url = url
        self.timeout = timeout

    def send(self, text: str) -> bool:
        url = self._url.get_secret_value()
        try:
            answer = httpx.post(url, json={"text": text}, timeout=self.timeout)
        except Exception as exc:  # whatever it is, the job goes on
            why = _scrub(str(exc), url)
            log.warning("alert.failed", extra={"error": f"{type(exc).__name__}: {why}"[:200]})
            return False
        if answer.is_success:
            log.info("alert.sent", extra={"status": answer.status_code})
            return True
        log.warning("alert.failed", extra={"status": answer.status_code})
        return False


class Alerts:
    """Opens and resolves incidents, telling the notifier once of each change."""

    def __init__(
        self,
        warehouse: Warehouse | None,
        notifier: Notifier | None,
        *,
        environment: str = "local",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.warehouse, self.notifier = warehouse, notifier
        self.environment = environment
        self.clock = clock
        self._open: dict[str, Incident] | None = None
        self._read_at = 0.0
        self._unreadable = False

    def open(self, key: str, job: str, summary: str, action: str, run_id: str | None) -> None:
        """``key`` is happening: announce it unless it already was."""
        try:
            self._opened(key, job, " ".join(summary.split()), action, run_id)
        except Exception as exc:  # an alert never fails the job that raises it
            log.warning("alert.error", extra={"incident": key, "error": str(exc)[:200]})

    def resolve(self, key: str, job: str) -> None:
        """``key`` is over: announce its end if its opening was announced."""
        try:
            self._resolved(key, job)
        except Exception as exc:
            log.warning("alert.error", extra={"incident": key, "error": str(exc)[:200]})

    def resolve_all(self, prefix: str, job: str, *, keep: Collection[str] = ()) -> None:
        """Resolve every open incident whose key starts with ``prefix``, but ``keep``."""
        for key in [k for k in self._incidents() if k.startswith(prefix) and k not in keep]:
            self.resolve(key, job)

    def _opened(self, key: str, job: str, summary: str, action: str, run_id: str | None) -> None:
        incidents = self._incidents()
        incident = incidents.get(key)
        if incident is not None and (incident.notified_at is not None or self.notifier is None):
            log.debug("alert.ongoing", extra={"incident": key})  # told, or nobody to tell
            return
        now = self.clock()
        created = incident is None
        if incident is None:
            incident = Incident(key, job, summary, run_id, now)
            log.info("alert.opened", extra={"incident": key, "summary": summary})
        text = f"[{self.environment}] {job}: {summary}"
        text += f" (run {run_id})" if run_id else ""
        text += f"\nWhat to do: {action}"
        sent = self.notifier is not None and self.notifier.send(text)
        if sent:
            incident.notified_at = now
        incidents[key] = incident
        if created or sent:  # stored only when it changes
            self._store(incident)

    def _resolved(self, key: str, job: str) -> None:
        incidents = self._incidents()
        incident = incidents.pop(key, None)
        if incident is None:
            return
        incident.resolved_at = self.clock()
        log.info("alert.resolved", extra={"incident": key})
        if incident.notified_at is not None and self.notifier is not None:
            lasted = incident.resolved_at - incident.opened_at
            self.notifier.send(
                f"[{self.environment}] resolved: {job}: {incident.summary} "
                f"(open for {_duration(lasted.total_seconds())})"
            )
        self._store(incident)

    def _incidents(self) -> dict[str, Incident]:
        """The open incidents, read from the warehouse at most every :data:`REREAD`
        seconds (a long-running ``up`` sees what a batch run by hand changed). When it
        cannot be read, what this process knows stands (at first: nothing), so that a
        long-running job does not announce the same incident at every reread."""
        if self._open is None or time.monotonic() - self._read_at > REREAD:
            known, self._read_at = self._open or {}, time.monotonic()
            self._open = known
            if self.warehouse is not None:
                try:
                    self._open = {i.incident: i for i in self.warehouse.open_incidents()}
                    self._unreadable = False
                except PlatformError as exc:
                    if not self._unreadable:  # once, not at every reread
                        log.warning("alert.store_failed", extra={"error": str(exc)[:200]})
                    self._unreadable = True
        return self._open

    def _store(self, incident: Incident) -> None:
        if self.warehouse is None or self._unreadable:
            return  # the warehouse could not be read: said once already
        try:
            self.warehouse.record_incident(incident)
        except PlatformError as exc:
            log.warning("alert.store_failed", extra={"error": str(exc)[:200]})


def _scrub(text: str, url: str) -> str:
    """``text`` without the webhook's URL or its path and query (the secret part)."""
    parts = urlsplit(url)
    for secret in (url, parts.path + (f"?{parts.query}" if parts.query else ""), parts.query):
        if len(secret) > 1:
            text = text.replace(secret, "<secret>")
    return text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
