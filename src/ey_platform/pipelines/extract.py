"""Extract: stream an entity from the API and validate it at the edge, batch by batch."""

from __future__ import annotations

import gc
import os
import select
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.context import ForkServerContext

from ey_platform.errors import MalformedResponse
from ey_platform.locks import pid_alive
from ey_platform.models import Entity
from ey_platform.ops.quality import profile_lines
from ey_platform.runtime import tune_allocator
from ey_platform.source.client import FakeStoreClient, prepare_text
from ey_platform.source.jsonstream import merge_texts
from ey_platform.validation import (
    GatedBatch,
    ValidatedBatch,
    gate_json,
    gc_paused,
    validate_batch,
)


@dataclass
class ExtractCounts:
    entity: Entity
    extracted: int = 0
    valid: int = 0
    rejected: int = 0


def extract(
    client: FakeStoreClient, entity: Entity, counts: ExtractCounts | None = None
) -> Iterator[ValidatedBatch]:
    """Yield validated batches of ``entity``; ``counts`` is updated as they pass.

    The cyclic collector stays paused until the generator ends: turning it back on
    between batches makes it sweep every live record, which cost more than parsing.
    """
    counts = counts or ExtractCounts(entity)
    with gc_paused():
        for batch in client.iter_entity(entity):
            checked = validate_batch(entity, batch)
            counts.extracted += len(batch)
            counts.valid += len(checked.valid)
            counts.rejected += len(checked.rejected)
            yield checked


def extract_jsonl(
    client: FakeStoreClient, entity: Entity, counts: ExtractCounts, workers: int = 1
) -> Iterator[GatedBatch]:
    """Yield batches validated straight from the API's JSON text, their valid records as
    JSONL lines exactly as received: the batch path, where no Python dict of a raw
    record is needed. With ``workers`` > 1 and more than one batch, validation runs in
    that many processes (it is the main cost: about 4.5 µs per user)."""
    if workers > 1:
        _warm_up()
    with gc_paused(), _OrderedGate(entity, workers) as gate:
        for batch in gate.run(client.iter_texts(entity)):
            counts.extracted += batch.valid + len(batch.rejected)
            counts.valid += batch.valid
            counts.rejected += len(batch.rejected)
            yield batch


def _pool(workers: int) -> ProcessPoolExecutor:
    # forkserver: never fork a process that runs threads (httpx, the DuckDB loader); the
    # server imports this module once and each worker starts warm.
    return ProcessPoolExecutor(
        workers, mp_context=_forkserver(), initializer=_worker_setup, initargs=(os.getpid(),)
    )


def _forkserver() -> ForkServerContext:
    context = get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _warm_up() -> None:
    """Start the fork server and its imports (half a second of one core) in the
    background, so that it is ready when the second text arrives instead of starting
    then: it overlaps the API's time to first byte. Once per process; cheap after."""
    from multiprocessing import forkserver

    _forkserver()
    forkserver.ensure_running()


def _worker_setup(parent: int) -> None:
    _exit_with(parent)
    tune_allocator()  # as the CLI does for the main process
    gc.disable()  # the records hold no cycles; see validation.gc_paused
    # Below the main process, so that the download, the lake writes and the warehouse
    # load keep pace with validation instead of piling up behind it.
    os.nice(5)


def _exit_with(parent: int) -> None:
    """End this worker when ``parent`` ends, even killed: a worker's parent is the fork
    server, which lives as long as any worker does, so without this the workers, the
    fork server and the resource tracker of a killed batch would live on."""

    def watch() -> None:
        try:
            pidfd = os.pidfd_open(parent)
        except ProcessLookupError:
            os._exit(1)
        except OSError:  # no pidfd (an old kernel): look every second
            while pid_alive(parent):
                time.sleep(1.0)
            os._exit(1)
        select.select([pidfd], [], [])  # readable once the process has ended
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def gate_text(entity: Entity, text: bytes) -> GatedBatch:
    """One batch text, as the API sent it, made ready to land, with the profile of its
    records (runs in a worker)."""
    batch = gate_json(entity, prepare_text(entity, text))
    batch.shape = profile_lines(batch.jsonl)
    return batch


class _OrderedGate:
    """Gates the texts of :meth:`FakeStoreClient.iter_texts` in order, in worker
    processes when there is more than one text.

    Texts are cut where an element seems to end, unproven; a text that is not valid
    JSON was cut inside an element and is merged with the next text and gated again.
    Only the last text failing means the body itself is not valid JSON.
    """

    def __init__(self, entity: Entity, workers: int) -> None:
        self.entity = entity
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        self.error: ValueError | None = None

    def __enter__(self) -> _OrderedGate:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def run(self, texts: Iterator[bytes]) -> Iterator[GatedBatch]:
        pending: deque[tuple[bytes, Future[GatedBatch] | None]] = deque()
        carry: bytes | None = None
        for n, text in enumerate(texts):
            if n == 1 and self.workers > 1:
                self.pool = _pool(self.workers)
            future = self.pool.submit(gate_text, self.entity, text) if self.pool else None
            pending.append((text, future))
            while len(pending) > 2 * self.workers:
                batch, carry = self._settle(*pending.popleft(), carry)
                if batch is not None:
                    yield batch
        while pending:
            batch, carry = self._settle(*pending.popleft(), carry)
            if batch is not None:
                yield batch
        if carry is not None:
            raise MalformedResponse(f"GET /{self.entity}: body is not valid JSON: {self.error}")

    def _settle(
        self, text: bytes, future: Future[GatedBatch] | None, carry: bytes | None
    ) -> tuple[GatedBatch | None, bytes | None]:
        if carry is not None:
            if future is not None:
                future.cancel()
            text, future = merge_texts(carry, text), None
        try:
            return (future.result() if future else gate_text(self.entity, text)), None
        except ValueError as exc:
            self.error = exc
            return None, text


def count_valid(client: FakeStoreClient, entity: Entity) -> ExtractCounts:
    """Fetch and validate ``entity`` without keeping it: the counts only."""
    counts = ExtractCounts(entity)
    for _ in extract(client, entity, counts):
        pass
    return counts
