"""Process control of the stream: stop on SIGINT/SIGTERM, poll on a period, run the
poller and the consumer together."""

from __future__ import annotations

import logging
import signal
import threading
import time

from ey_platform.errors import PlatformError
from ey_platform.pipelines.consumer import CartConsumer, ConsumeResult
from ey_platform.pipelines.poller import CartPoller

log = logging.getLogger("ey_platform.stream")


class Stopper:
    """Set by SIGINT/SIGTERM: loops finish what they hold, then return."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.consumers: list[CartConsumer] = []

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        log.info("stream.stopping", extra={"signal": signal.Signals(signum).name})
        self.stop()

    def stop(self) -> None:
        self.event.set()
        for consumer in self.consumers:
            consumer.stop()


def poll_every(
    poller: CartPoller,
    interval: float,
    stopper: Stopper,
    *,
    once: bool = False,
    allow_mass_delete: bool = False,
) -> int:
    """Poll now and then every ``interval`` seconds until stopped; returns polls done.
    A failed poll is logged and retried at the next tick (the state is untouched)."""
    polls = 0
    while not stopper.event.is_set():
        started = time.monotonic()
        try:
            poller.poll_once(allow_mass_delete=allow_mass_delete)
            polls += 1
        except PlatformError as exc:
            if once:
                raise
            log.error("stream.poll_failed", extra={"error": str(exc)})
        if once:
            break
        stopper.event.wait(max(0.0, interval - (time.monotonic() - started)))
    return polls


def run_both(
    poller: CartPoller, consumer: CartConsumer, interval: float, stopper: Stopper
) -> ConsumeResult:
    """The poller in a thread, the consumer in this one, until stopped."""
    stopper.consumers.append(consumer)
    thread = threading.Thread(
        target=poll_every, args=(poller, interval, stopper), name="poller", daemon=True
    )
    thread.start()
    try:
        return consumer.run()
    finally:
        stopper.stop()
        thread.join()
