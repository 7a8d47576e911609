"""``ey-platform up``: the whole platform in one long-running process.

The poller (every poll interval) and the consumer run in threads; this thread runs
the daily batch at its UTC time and the transform after each batch and every
``transform_every`` minutes. SIGTERM or SIGINT: the consumer finishes its batch, the
poller its poll, and the process exits. A failing step is logged and tried again at
its next turn; the process keeps running. A part whose thread dies (an error the
consumer cannot pass over) stops the whole process with exit status 1, so that its
host restarts it. The batch's next turn after a failure is
``retry_after`` later, not the next day; and a process started after the day's run
time runs the batch at once unless the day's batch has already finished.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import partial

from ey_platform.errors import PlatformError
from ey_platform.pipelines.consumer import CartConsumer
from ey_platform.pipelines.control import Stopper, poll_every, raise_if_failed, start_part
from ey_platform.pipelines.poller import CartPoller

log = logging.getLogger("ey_platform.up")


def next_run(now: datetime, at: time) -> datetime:
    """The next moment at ``at`` (UTC) strictly after ``now``."""
    candidate = datetime.combine(now.date(), at, tzinfo=UTC)
    return candidate if candidate > now else candidate + timedelta(days=1)


def first_batch(now: datetime, at: time, finished: Callable[[date], bool]) -> datetime:
    """When a process started at ``now`` runs its first batch: at once if today's run
    time has passed and today's batch has not finished (the process was down, or the
    batch failed), else at the next run time."""
    if now >= datetime.combine(now.date(), at, tzinfo=UTC) and not finished(now.date()):
        return now
    return next_run(now, at)


class Scheduler:
    def __init__(
        self,
        poller: CartPoller,
        consumer: CartConsumer,
        batch: Callable[[date], object],
        transform: Callable[[], object],
        *,
        poll_interval: float,
        batch_at: time,
        transform_every: timedelta,
        batch_finished: Callable[[date], bool] = lambda day: True,
        retry_after: timedelta = timedelta(minutes=10),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        check: Callable[[], object] = lambda: None,
        check_every: timedelta = timedelta(minutes=1),
    ) -> None:
        self.poller, self.consumer = poller, consumer
        self.batch, self.transform = batch, transform
        self.batch_finished, self.retry_after = batch_finished, retry_after
        self.poll_interval, self.batch_at, self.transform_every = (
            poll_interval,
            batch_at,
            transform_every,
        )
        self.clock = clock
        self.check, self.check_every = check, check_every
        """What is looked at every ``check_every`` (the bus's backlog and dead letters)."""
        self.failed: list[str] = []
        """The parts whose thread died, with why."""
        self.last: dict[str, tuple[datetime, bool]] = {}
        """When each step (batch, transform) last ran, and whether it succeeded."""

    def health(self) -> dict[str, object]:
        """What ``/healthz`` answers: ``status`` ok while every part runs, failing once
        one died; and the last outcome of each step."""
        return {
            "status": "failing" if self.failed else "ok",
            "failed": list(self.failed),
            "steps": {  # a copy: the scheduler's thread adds to it while a scrape reads
                name: {"at": at.isoformat(timespec="seconds"), "ok": ok}
                for name, (at, ok) in list(self.last.items())
            },
        }

    def run(self, stopper: Stopper, *, batch_now: bool = False) -> None:
        stopper.consumers.append(self.consumer)
        failed = self.failed
        parts: dict[str, Callable[[], object]] = {
            "consumer": self.consumer.run,
            "poller": partial(poll_every, self.poller, self.poll_interval, stopper),
        }
        threads = [start_part(name, run, stopper, failed) for name, run in parts.items()]
        now = self.clock()
        next_batch = now if batch_now else self._first_batch(now)
        next_transform = now + self.transform_every
        next_check = now
        log.info("up.started", extra={"next_batch": next_batch.isoformat(timespec="seconds")})
        while not stopper.event.is_set():
            now = self.clock()
            if now >= next_batch:
                if self._step("batch", partial(self.batch, now.date())):
                    self._step("transform", self.transform)
                    next_batch = next_run(now, self.batch_at)
                    next_transform = now + self.transform_every
                else:
                    next_batch = min(now + self.retry_after, next_run(now, self.batch_at))
                    log.info(
                        "up.batch_retry", extra={"at": next_batch.isoformat(timespec="seconds")}
                    )
            elif now >= next_transform:
                self._step("transform", self.transform)
                next_transform = now + self.transform_every
            if now >= next_check:
                self._step("check", self.check)
                next_check = now + self.check_every
            stopper.event.wait(1.0)
        stopper.stop()
        for thread in threads:
            thread.join()
        if failed:
            log.error("up.stopped", extra={"failed": failed[0]})
        raise_if_failed("up", failed)
        log.info("up.stopped")

    def _first_batch(self, now: datetime) -> datetime:
        try:
            return first_batch(now, self.batch_at, self.batch_finished)
        except PlatformError as exc:  # cannot tell: run it, a rerun of a day changes nothing
            log.error("up.batch_check_failed", extra={"error": str(exc)})
            return now

    def _step(self, name: str, action: Callable[[], object]) -> bool:
        """Run ``action``; False (and the error logged) if it failed."""
        try:
            action()
        except PlatformError as exc:
            log.error(f"up.{name}_failed", extra={"error": str(exc)})
            self.last[name] = (self.clock(), False)
            return False
        self.last[name] = (self.clock(), True)
        return True
