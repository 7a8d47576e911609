"""Process control of the stream: stop on SIGINT/SIGTERM, poll on a period, run the
poller and the consumer together."""

from __future__ import annotations

import contextvars
import logging
import signal
import threading
import time
from collections.abc import Callable
from functools import partial

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


def start_part(
    name: str, run: Callable[[], object], stopper: Stopper, failed: list[str]
) -> threading.Thread:
    """``run`` in a thread of its own. A part that dies stops every loop of ``stopper``
    and is added to ``failed``: a process that polls with no consumer, or consumes with
    no poller, would look alive to its host and do half its work."""

    def supervised() -> None:
        try:
            run()
        except Exception as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            failed.append(f"the {name} failed: {message}")
            log.error("stream.part_failed", extra={"part": name, "error": message})
            log.debug("stream.part_failed", exc_info=exc)
            stopper.stop()

    # In the starter's context: its log lines carry the command's job and run.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(supervised,), name=name, daemon=True)
    thread.start()
    return thread


def raise_if_failed(process: str, failed: list[str]) -> None:
    """The first part that died, as the process's one error line (exit status 1)."""
    if failed:
        raise PlatformError(f"{process} stopped: {failed[0]}")


def run_both(
    poller: CartPoller, consumer: CartConsumer, interval: float, stopper: Stopper
) -> ConsumeResult:
    """The poller in a thread, the consumer in this one, until stopped; a poller that
    dies stops the consumer, and the process fails with its error."""
    stopper.consumers.append(consumer)
    failed: list[str] = []
    thread = start_part("poller", partial(poll_every, poller, interval, stopper), stopper, failed)
    try:
        result = consumer.run()
    finally:
        stopper.stop()
        thread.join()
    raise_if_failed("stream", failed)
    return result
