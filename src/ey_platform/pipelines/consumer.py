"""The cart consumer: pulls a batch, validates it, inserts the valid events into the
warehouse skipping event ids it already holds (in the same transaction), commits,
then acks. A crash before the commit redelivers the batch; a crash after it
redelivers events the warehouse skips. Messages that cannot be parsed or validated go
to the dead-letter topic with the reason, so nothing is redelivered forever.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from ey_platform.bus.base import Bus, Received, bus_stats
from ey_platform.events import check_events
from ey_platform.validation import gc_paused
from ey_platform.warehouse.base import EventRows, EventSink

log = logging.getLogger("ey_platform.stream")


@dataclass
class ConsumeResult:
    pulled: int = 0
    loaded: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    seconds: float = 0.0


class CartConsumer:
    """Pulls cart events and lands them in ``bq_raw.carts_events`` exactly once.

    Pipelined: while one batch is written into the warehouse, in a thread (DuckDB and
    BigQuery work outside the GIL), the next is pulled and validated. A batch is acked
    only once its write has committed, and at most one write is in flight, so batches
    commit in the order they were pulled. A message that is still leased holds back
    the later messages of its key (the bus's ordering), so two batches in hand never
    share a cart.
    """

    def __init__(
        self,
        bus: Bus,
        sink: EventSink,
        batch_size: int = 20_000,
        *,
        around_run: Callable[[], AbstractContextManager[object]] = nullcontext,
        landed: Callable[[int], object] = lambda events: None,
    ) -> None:
        self.bus, self.sink, self.batch_size = bus, sink, batch_size
        self.around_run = around_run
        """:meth:`run` runs inside it (the composition root watches the consumer)."""
        self.landed = landed
        """Told how many new events each committed batch landed (for the metrics)."""
        self.stopping = False

    def stop(self) -> None:
        """Finish the batches in hand, then return from :meth:`run`."""
        self.stopping = True

    def run(self, *, drain: bool = False, idle_sleep: float = 0.1) -> ConsumeResult:
        """Consume until :meth:`stop`, or with ``drain`` until the subscription is empty:
        messages leased to another consumer (alive, or dead and due again at the end of
        their lease) are waited for, since they are not done yet."""
        with self.around_run():
            return self._run(drain, idle_sleep)

    def _run(self, drain: bool, idle_sleep: float) -> ConsumeResult:
        result = ConsumeResult()
        started = time.perf_counter()
        waiting_for = 0
        with _WriteBehind(self.bus, self.sink, result, self.landed) as writes:
            while not self.stopping:
                if not self._take(writes, result):
                    writes.settle()
                    self.sink.release()
                    if drain:
                        waiting_for = self._leased_elsewhere(waiting_for)
                        if not waiting_for:
                            break
                    time.sleep(idle_sleep)
        self.sink.release()
        result.seconds = time.perf_counter() - started
        log.info(
            "stream.consume",
            extra={
                "pulled": result.pulled,
                "loaded": result.loaded,
                "duplicates": result.duplicates,
                "dead_lettered": result.dead_lettered,
                "seconds": result.seconds,
            },
        )
        return result

    def _leased_elsewhere(self, announced: int) -> int:
        """How many messages are leased to someone else (0 if the bus cannot tell);
        logged when that number changes."""
        stats = bus_stats(self.bus)
        if stats is None or not stats.leased:
            return 0
        leased = stats.leased
        if leased != announced:
            due = stats.next_lease_due_seconds
            log.warning(
                "stream.drain_waiting",
                extra={
                    "leased": leased,
                    "due_again_in": "?" if due is None else f"{due:.1f}s",
                    "hint": "leased to another consumer, or to one that died",
                },
            )
        return leased

    def consume_batch(self, result: ConsumeResult) -> bool:
        """One pull, land, ack, without a pipeline. False when there was nothing to pull."""
        with _WriteBehind(self.bus, self.sink, result, self.landed) as writes:
            return self._take(writes, result)

    def _take(self, writes: _WriteBehind, result: ConsumeResult) -> bool:
        """Pull and validate a batch, dead-letter its invalid messages and hand the rest
        to ``writes``. False when there was nothing to pull."""
        with gc_paused():  # a batch is thousands of fresh objects and no cycle
            messages = self.bus.pull(self.batch_size)
            if not messages:
                return False
            checked = check_events(messages)
        for message, reason in checked.invalid:
            self.bus.dead_letter(message, reason)
            log.warning(
                "stream.dead_letter", extra={"message_id": message.message_id, "reason": reason}
            )
        result.pulled += len(messages)
        result.dead_lettered += len(checked.invalid)
        result.batches += 1
        writes.put(checked.valid)
        return True


class _WriteBehind:
    """Writes valid batches into the sink in a thread, one at a time, and acks each
    once it is committed (:meth:`settle`). Leaving the block settles the batch in
    flight; after an error, that batch is left unacked, to be redelivered and skipped
    by its event ids if it did commit."""

    def __init__(
        self,
        bus: Bus,
        sink: EventSink,
        result: ConsumeResult,
        landed: Callable[[int], object],
    ) -> None:
        self.bus, self.sink, self.result, self.landed = bus, sink, result, landed
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="consumer-write")
        self.pending: tuple[Future[int], list[Received]] | None = None

    def __enter__(self) -> _WriteBehind:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            if exc_type is None:
                self.settle()
        finally:
            self.pool.shutdown(wait=True)

    def put(self, valid: list[Received]) -> None:
        """Start writing ``valid`` once the batch before it is settled."""
        try:
            self.settle()
        except BaseException:
            self.bus.nack([m.ack_id for m in valid])  # due again now, not at the deadline
            raise
        if valid:
            # In this thread's context: the write's BigQuery job carries its job label.
            write = contextvars.copy_context().run
            self.pending = (self.pool.submit(write, self.sink.write, _rows(valid)), valid)

    def settle(self) -> None:
        """Wait for the write in flight, if any, and ack its messages."""
        if self.pending is None:
            return
        future, valid = self.pending
        self.pending = None
        inserted = future.result()
        self.bus.ack([m.ack_id for m in valid])
        self.result.loaded += inserted
        self.result.duplicates += len(valid) - inserted
        self.landed(inserted)


def _rows(valid: list[Received]) -> EventRows:
    return EventRows(
        data=[m.data for m in valid],
        message_ids=[m.message_id for m in valid],
        publish_times=[m.publish_time for m in valid],
    )
