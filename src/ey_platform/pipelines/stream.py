"""Streaming: the cart poller publishes events, the consumer lands them exactly once.

Poller: each poll fetches every cart, compares its content hash with what was last
published for it (:mod:`.poller_state`), and publishes ``cart_created``,
``cart_updated`` and, for carts that vanished, ``cart_deleted``. The state of a cart
moves on only after the bus confirms the publish. A poller that finds its state empty
while the warehouse holds events (a fresh disk, a new Cloud Run task) starts from what
the warehouse landed of each cart (:func:`landed_cart_states`).

Consumer: pulls a batch, validates it, inserts the valid events into the warehouse
skipping event ids it already holds (in the same transaction), commits, then acks.
A crash before the commit redelivers the batch; a crash after it redelivers events
the warehouse skips. Messages that cannot be parsed or validated go to the dead-letter
topic with the reason, so nothing is redelivered forever.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from ey_platform.bus.base import Bus, Message, Received
from ey_platform.errors import PlatformError, SuspiciousAnswer, WarehouseError
from ey_platform.lake.base import Lake, put_bytes, quarantine_key
from ey_platform.models import EVENT_SCHEMA_VERSION, EVENT_TYPES, event_adapter
from ey_platform.pipelines.extract import ExtractCounts, extract
from ey_platform.pipelines.poller_state import CartState, Known, PollerState, PollResult
from ey_platform.source.client import FakeStoreClient
from ey_platform.validation import Rejected, gc_paused, reject_lines
from ey_platform.warehouse.base import EventRows, EventSink, Warehouse

log = logging.getLogger("ey_platform.stream")

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def content_hash(cart_json: bytes) -> str:
    return hashlib.blake2b(cart_json, digest_size=16).hexdigest()


def event_id(cart_id: int, version: int, event_type: str, digest: str | None) -> str:
    """Deterministic: the same change of the same cart always has the same id, and two
    changes never share one (the version grows with every change)."""
    key = f"{cart_id}:{version}:{event_type}:{digest or '-'}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def landed_states_sql(raw: str, alive_only: bool = False) -> str:
    """A query of every cart in ``{raw}.carts_events``: its id, the content hash of the
    state observed last (NULL if it was a deletion; ``alive_only`` leaves those out)
    and its highest version. The state observed last is the latest one, as in
    ``fact_orders``: a republish after a lost memory or a crash can repeat a version."""
    alive = " AND content_hash IS NOT NULL" if alive_only else ""
    return f"""
        SELECT cart_id, content_hash, top_version FROM (
            SELECT cart_id, content_hash,
                   max(cart_version) OVER (PARTITION BY cart_id) AS top_version,
                   row_number() OVER (PARTITION BY cart_id
                                      ORDER BY extracted_at DESC, cart_version DESC) AS observed
            FROM {raw}.carts_events) AS events
        WHERE observed = 1{alive}"""


def landed_cart_states(warehouse: Warehouse, alive_only: bool = False) -> list[CartState]:
    """What the warehouse landed of each cart (:func:`landed_states_sql`), so that
    versions go on growing. Events still on the bus are not in it; the poller publishes
    those changes again, with the same ids where the cart has not changed since (the
    sink skips them), and where it has, the state observed last wins downstream."""
    rows = warehouse.query(landed_states_sql(warehouse.raw, alive_only))
    return [(int(cart), digest, int(version)) for cart, digest, version in rows]


class CartPoller:
    """Turns the carts the API holds into events, once per change.

    ``landed(alive_only)`` gives what the warehouse holds of each cart (see
    :func:`landed_cart_states`). The poller starts from it when its own state is empty:
    without it, a poller that lost its state would publish every cart again from
    version 1 and never learn of the carts deleted meanwhile. And every
    ``reconcile_every`` seconds (from its first poll, or that long after a recovery,
    which is such a check) it deletes the carts the warehouse holds alive that neither
    the API nor its state knows: carts created in events that were still on the bus
    when a state was lost (or between a publish and a crash), and deleted since.

    A complete fetch that would delete more than ``max_delete_fraction`` of the carts
    alive in its memory is not believed (an API answering an empty or cut list would
    wipe the latest state downstream): the poll fails with :class:`SuspiciousAnswer` and
    publishes nothing, unless it is called with ``allow_mass_delete``. So that nothing
    is published before that is known, a poll that knows live carts publishes once its
    fetch is complete; a poll that knows none (the first) publishes as it fetches.
    """

    def __init__(
        self,
        client: FakeStoreClient,
        bus: Bus,
        state: PollerState,
        lake: Lake,
        clock: Clock = _utc_now,
        landed: Callable[[bool], list[CartState]] | None = None,
        reconcile_every: float = 3600.0,
        max_delete_fraction: float = 0.5,
    ) -> None:
        self.client, self.bus, self.state, self.lake, self.clock = client, bus, state, lake, clock
        self.landed = landed
        self.reconcile_every = reconcile_every
        self.max_delete_fraction = max_delete_fraction
        self._reconcile_at = time.monotonic()

    def poll_once(self, *, allow_mass_delete: bool = False) -> PollResult:
        started = time.perf_counter()
        extracted_at = self.clock()
        poll_id = f"{extracted_at:%Y%m%dT%H%M%S}Z-{secrets.token_hex(3)}"
        result = PollResult(poll_id, extracted_at.timestamp())
        self.state.record_poll(result)
        try:
            self._poll(result, extracted_at, allow_mass_delete)
        except BaseException as exc:
            result.status, result.error = "failed", str(exc) or type(exc).__name__
            result.finished_at = time.time()
            self.state.record_poll(result)
            raise
        result.seconds = time.perf_counter() - started
        result.status, result.finished_at = "succeeded", time.time()
        self.state.record_poll(result)
        log.info(
            "stream.poll",
            extra={
                "poll_id": result.poll_id,
                "fetched": result.fetched,
                "carts_created": result.created,
                "carts_updated": result.updated,
                "carts_deleted": result.deleted,
                "quarantined": result.quarantined,
                "seconds": result.seconds,
            },
        )
        return result

    def _known(self) -> dict[int, Known]:
        """The state, or, when it is empty, what the warehouse landed (saved as the state)."""
        known = self.state.load()
        if known or self.landed is None:
            return known
        landed = self.landed(False)
        # Every cart the warehouse holds is known now: no stray to look for until the
        # next period, when the events that were on the bus have landed.
        self._reconcile_at = time.monotonic() + self.reconcile_every
        if landed:
            self.state.save(landed)
            log.warning("stream.state_recovered", extra={"carts": len(landed)})
        return {cart_id: Known(digest, version) for cart_id, digest, version in landed}

    def _poll(self, result: PollResult, extracted_at: datetime, allow_mass_delete: bool) -> None:
        known = self._known()
        alive = sum(1 for k in known.values() if k.content_hash is not None)
        held: list[_Event] | None = [] if alive else None  # published once trusted
        seen: set[int] = set()
        counts = ExtractCounts("carts")
        rejects: list[Rejected] = []
        for batch in extract(self.client, "carts", counts):
            rejects += batch.rejected
            seen.update(cart["id"] for cart in batch.valid)
            seen.update(_cart_ids(batch.rejected))  # quarantined is not gone: no deletion
            changes = self._changes(batch.valid, known, result)
            if held is None:
                self._publish(changes, extracted_at)
            else:
                held += changes
        result.fetched, result.quarantined = counts.extracted, counts.rejected
        if rejects:
            self._quarantine(rejects, extracted_at, result.poll_id)
        # Only a complete fetch can tell that a cart is gone.
        gone = [
            (cid, k.version)
            for cid, k in known.items()
            if k.content_hash is not None and cid not in seen
        ]
        strays = self._strays(seen, known)
        if not allow_mass_delete:
            self._check_deletions(result, len(gone) + len(strays), alive + len(strays))
        gone += strays
        result.deleted = len(gone)
        deletions = [_Event(cid, version + 1, "cart_deleted", None, None) for cid, version in gone]
        self._publish([*(held or ()), *deletions], extracted_at)

    def _check_deletions(self, result: PollResult, deleting: int, alive: int) -> None:
        """Refuse a poll that deletes more than ``max_delete_fraction`` of the live carts."""
        if not alive or deleting <= self.max_delete_fraction * alive:
            return
        self._reconcile_at = time.monotonic()  # the stray check ran for nothing: redo it
        raise SuspiciousAnswer(
            f"poll {result.poll_id}: the API answered {result.fetched:,} carts, which would "
            f"delete {deleting:,} of the {alive:,} live carts ({deleting / alive:.0%}, more "
            f"than EYP_STREAM__MAX_DELETE_FRACTION={self.max_delete_fraction:g}); nothing "
            "was published and the next poll tries again. If they really are gone: "
            "ey-platform stream poll --once --allow-mass-delete"
        )

    def _strays(self, seen: set[int], known: dict[int, Known]) -> list[tuple[int, int]]:
        """Carts the warehouse holds alive that neither the API nor the state knows, with
        their highest version; checked once every ``reconcile_every`` seconds."""
        if self.landed is None or time.monotonic() < self._reconcile_at:
            return []
        try:
            alive = self.landed(True)
        except WarehouseError as exc:  # the poll itself went through: try at the next one
            log.warning("stream.reconcile_skipped", extra={"error": str(exc)})
            return []
        self._reconcile_at = time.monotonic() + self.reconcile_every
        strays = [
            (cid, version) for cid, _, version in alive if cid not in seen and cid not in known
        ]
        if strays:
            log.warning("stream.strays_deleted", extra={"carts": len(strays)})
        return strays

    def _changes(
        self,
        carts: list[dict[str, Any]],
        known: dict[int, Known],
        result: PollResult,
    ) -> list[_Event]:
        events = []
        for cart in carts:
            cart_json = orjson.dumps(cart)
            digest = content_hash(cart_json)
            before = known.get(cart["id"])
            if before is not None and before.content_hash == digest:
                result.unchanged += 1
                continue
            if before is None or before.content_hash is None:
                kind = "cart_created"
                result.created += 1
            else:
                kind = "cart_updated"
                result.updated += 1
            version = 1 if before is None else before.version + 1
            events.append(_Event(cart["id"], version, kind, digest, cart_json))
        return events

    def _publish(self, events: list[_Event], extracted_at: datetime, chunk: int = 20_000) -> None:
        for start in range(0, len(events), chunk):
            part = events[start : start + chunk]
            self.bus.publish(_messages(part, extracted_at, self.clock()))
            self.state.save((e.cart_id, e.digest, e.version) for e in part)

    def _quarantine(self, rejects: list[Rejected], when: datetime, poll_id: str) -> None:
        key = quarantine_key("carts", when.date(), poll_id)
        put_bytes(self.lake, key, reject_lines(rejects), len(rejects))


def _cart_ids(rejected: list[Rejected]) -> Iterator[int]:
    """The ids of rejected carts, where they have one that can be read."""
    for reject in rejected:
        record = reject.record
        if isinstance(record, dict) and type(record.get("id")) is int:
            yield record["id"]


class _Event(NamedTuple):
    """A change to publish. (A tuple: a million are made in a first poll.)"""

    cart_id: int
    version: int
    kind: str
    digest: str | None
    cart_json: bytes | None


_SCHEMA_VERSION = str(EVENT_SCHEMA_VERSION)


def _messages(
    events: list[_Event], extracted_at: datetime, published_at: datetime
) -> list[Message]:
    """The bus messages of ``events``. The envelope is written as text around the cart's
    JSON: its values are integers, hex digests, event type names and instants as orjson
    writes them, none of which needs escaping (a third of the cost of a dict dumped)."""
    tail = b',"extracted_at":%b,"published_at":%b,"cart":' % (
        orjson.dumps(extracted_at),
        orjson.dumps(published_at),
    )
    messages = []
    for cart_id, version, kind, digest, cart_json in events:
        eid = event_id(cart_id, version, kind, digest)
        content = f'"{digest}"' if digest else "null"
        head = (
            f'{{"schema_version":{_SCHEMA_VERSION},"event_id":"{eid}","event_type":"{kind}",'
            f'"cart_id":{cart_id},"cart_version":{version},"content_hash":{content}'
        )
        key = str(cart_id)
        attributes = {
            "event_id": eid,
            "event_type": kind,
            "cart_id": key,
            "schema_version": _SCHEMA_VERSION,
        }
        messages.append(
            Message(head.encode() + tail + (cart_json or b"null") + b"}", attributes, key)
        )
    return messages


# -- the consumer --------------------------------------------------------------------


@dataclass
class ConsumeResult:
    pulled: int = 0
    loaded: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    seconds: float = 0.0


@dataclass
class _Checked:
    valid: list[Received] = field(default_factory=list)
    invalid: list[tuple[Received, str]] = field(default_factory=list)


_EVENTS = event_adapter()


def check_events(messages: list[Received]) -> _Checked:
    """Validate a pulled batch in one call of pydantic-core; a message that is not JSON
    at all spoils the batch's text, and is then found message by message."""
    text = b"[" + b",".join(m.data for m in messages) + b"]"
    try:
        _EVENTS.validate_json(text)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors[0]["type"] == "json_invalid":
            return _check_one_by_one(messages)
        bad: dict[int, str] = {}
        for err in errors:
            bad.setdefault(int(err["loc"][0]), _reason(err))
        return _Checked(
            [m for i, m in enumerate(messages) if i not in bad],
            [(messages[i], reason) for i, reason in bad.items()],
        )
    return _Checked(messages)


def _check_one_by_one(messages: list[Received]) -> _Checked:
    checked = _Checked()
    for message in messages:
        try:
            _EVENTS.validate_json(b"[" + message.data + b"]")
            checked.valid.append(message)
        except ValidationError as exc:
            checked.invalid.append((message, _reason(exc.errors(include_url=False)[0])))
    return checked


def _reason(err: Any) -> str:
    # loc is (index, union tag, field...): keep the field path
    path = [str(p) for p in err["loc"][1:] if p not in EVENT_TYPES]
    return f"{'.'.join(path) or 'message'}: {err['msg']}"


class CartConsumer:
    """Pulls cart events and lands them in ``bq_raw.carts_events`` exactly once.

    Pipelined: while one batch is written into the warehouse, in a thread (DuckDB and
    BigQuery work outside the GIL), the next is pulled and validated. A batch is acked
    only once its write has committed, and at most one write is in flight, so batches
    commit in the order they were pulled. A message that is still leased holds back
    the later messages of its key (the bus's ordering), so two batches in hand never
    share a cart.
    """

    def __init__(self, bus: Bus, sink: EventSink, batch_size: int = 20_000) -> None:
        self.bus, self.sink, self.batch_size = bus, sink, batch_size
        self.stopping = False

    def stop(self) -> None:
        """Finish the batches in hand, then return from :meth:`run`."""
        self.stopping = True

    def run(self, *, drain: bool = False, idle_sleep: float = 0.1) -> ConsumeResult:
        """Consume until :meth:`stop`, or with ``drain`` until the subscription is empty:
        messages leased to another consumer (alive, or dead and due again at the end of
        their lease) are waited for, since they are not done yet."""
        result = ConsumeResult()
        started = time.perf_counter()
        waiting_for = 0
        with _WriteBehind(self.bus, self.sink, result) as writes:
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
        stats = self.bus.stats()
        leased = stats.leased or 0
        if leased and leased != announced:
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
        with _WriteBehind(self.bus, self.sink, result) as writes:
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

    def __init__(self, bus: Bus, sink: EventSink, result: ConsumeResult) -> None:
        self.bus, self.sink, self.result = bus, sink, result
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
            self.pending = (self.pool.submit(self.sink.write, _rows(valid)), valid)

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


def _rows(valid: list[Received]) -> EventRows:
    return EventRows(
        data=[m.data for m in valid],
        message_ids=[m.message_id for m in valid],
        publish_times=[m.publish_time for m in valid],
    )


# -- running them ---------------------------------------------------------------------


class StreamParts(NamedTuple):
    """What the stream commands work with, built from settings in one place."""

    poller: CartPoller
    consumer: CartConsumer
    bus: Bus
    state: PollerState
    warehouse: Warehouse


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


def _count(value: int | None) -> str:
    return "n/a (see Cloud Monitoring)" if value is None else f"{value:,}"


def stream_status(
    bus: Bus | None, state: PollerState | None, warehouse: Warehouse
) -> dict[str, str]:
    """What an operator wants to see at a glance; ``None`` for a bus or a poller state
    that does not exist yet. Only reads."""
    facts: dict[str, str] = {}
    if bus is None:
        facts["bus"] = "none yet (nothing published)"
    else:
        stats = bus.stats()
        oldest = stats.oldest_unacked_seconds
        facts |= {
            "backlog (unacked)": _count(stats.backlog),
            "leased now": _count(stats.leased),
            "oldest unacked": "-" if oldest is None else f"{oldest:,.1f}s",
            "dead letters": _count(stats.dead_letters),
        }
    try:
        recent = warehouse.events_loaded_since(datetime.now(UTC) - timedelta(minutes=5))
        facts["throughput, last 5 min"] = f"{recent / 300:,.1f} events/s"
    except WarehouseError as exc:
        facts["throughput, last 5 min"] = f"n/a ({exc})"
    last = state.last_poll() if state is not None else None
    if last is None:
        facts["last poll"] = "none yet"
    else:
        when = datetime.fromtimestamp(last.started_at, UTC)
        facts["last poll"] = (
            f"{when:%Y-%m-%d %H:%M:%S}Z {last.status}: {last.fetched:,} carts, "
            f"+{last.created} ~{last.updated} -{last.deleted}"
            + (f" ({last.error})" if last.error else "")
        )
    return facts
