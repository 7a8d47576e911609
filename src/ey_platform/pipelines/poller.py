"""The cart poller: each poll fetches every cart, compares its content hash with what
was last published for it (the poller's state, :mod:`ey_platform.state`), and publishes
``cart_created``, ``cart_updated`` and, for carts that vanished, ``cart_deleted``. The
state of a cart moves on only after the bus confirms the publish. A poller that finds
its state empty while the warehouse holds events (a fresh disk, a new Cloud Run task)
starts from what the warehouse landed of each cart.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from ey_platform.bus.base import Bus
from ey_platform.errors import SuspiciousAnswer, WarehouseError
from ey_platform.events import Change, content_hash, encode
from ey_platform.lake.base import Lake, put_bytes, quarantine_key
from ey_platform.pipelines.extract import ExtractCounts, extract
from ey_platform.source.client import FakeStoreClient
from ey_platform.state.base import CartState, Known, PollerState, PollResult
from ey_platform.validation import Rejected, reject_lines

log = logging.getLogger("ey_platform.stream")

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LandedCarts(Protocol):
    """What the warehouse landed of each cart: the state observed last, as in
    ``fact_orders``. The warehouse is one (:class:`~ey_platform.warehouse.base.Warehouse`)."""

    def cart_states(self) -> list[CartState]:
        """Every cart in the events, deleted ones with no content hash."""
        ...

    def live_cart_states(self) -> list[CartState]:
        """The carts whose latest observed state is not a deletion."""
        ...


class CartPoller:
    """Turns the carts the API holds into events, once per change.

    ``landed`` gives what the warehouse holds of each cart (:class:`LandedCarts`).
    Events still on the bus are not in it; the poller publishes those changes again,
    with the same ids where the cart has not changed since (the sink skips them), and
    where it has, the state observed last wins downstream. The poller starts from it
    when its own state is empty:
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
        landed: LandedCarts | None = None,
        reconcile_every: float = 3600.0,
        max_delete_fraction: float = 0.5,
        around_poll: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        self.client, self.bus, self.state, self.lake, self.clock = client, bus, state, lake, clock
        self.around_poll = around_poll
        """Each poll runs inside it (the composition root watches polls with it)."""
        self.landed = landed
        self.reconcile_every = reconcile_every
        self.max_delete_fraction = max_delete_fraction
        self._reconcile_at = time.monotonic()

    def poll_once(self, *, allow_mass_delete: bool = False) -> PollResult:
        with self.around_poll():
            return self._poll_once(allow_mass_delete)

    def _poll_once(self, allow_mass_delete: bool) -> PollResult:
        started = time.perf_counter()
        extracted_at = self.clock()
        poll_id = f"{extracted_at:%Y%m%dT%H%M%S}Z-{secrets.token_hex(3)}"
        result = PollResult(poll_id, extracted_at.timestamp())
        self.state.record_poll(result)
        try:
            self._poll(result, extracted_at, allow_mass_delete=allow_mass_delete)
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
        landed = self.landed.cart_states()
        # Every cart the warehouse holds is known now: no stray to look for until the
        # next period, when the events that were on the bus have landed.
        self._reconcile_at = time.monotonic() + self.reconcile_every
        if landed:
            self.state.save(landed)
            log.warning("stream.state_recovered", extra={"carts": len(landed)})
        return {cart_id: Known(digest, version) for cart_id, digest, version in landed}

    def _poll(self, result: PollResult, extracted_at: datetime, *, allow_mass_delete: bool) -> None:
        known = self._known()
        alive = sum(1 for k in known.values() if k.content_hash is not None)
        held: list[Change] | None = [] if alive else None  # published once trusted
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
        deletions = [Change(cid, version + 1, "cart_deleted", None, None) for cid, version in gone]
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
            alive = self.landed.live_cart_states()
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
    ) -> list[Change]:
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
            events.append(Change(cart["id"], version, kind, digest, cart_json))
        return events

    def _publish(self, events: list[Change], extracted_at: datetime, chunk: int = 20_000) -> None:
        for start in range(0, len(events), chunk):
            part = events[start : start + chunk]
            self.bus.publish(encode(part, extracted_at, self.clock()))
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
