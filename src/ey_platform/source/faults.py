"""Fault injection for the bundled FakeStore server.

A plan is a comma-separated list of ``kind=value``. ``value`` is a probability in [0, 1]
(each request draws) or ``xN`` (the first N requests get it), except for ``latency``,
``retry_after`` and ``hang_for``, which are seconds. Kinds:

- ``latency``: seconds added to every answer.
- ``error``: HTTP 503.
- ``ratelimit``: HTTP 429 with ``Retry-After: <retry_after>`` (default 1).
- ``hang``: no answer at all for ``hang_for`` seconds (default 300), as the public API
  does on some errors.
- ``malformed``: HTTP 200 with a truncated, invalid JSON body.
- ``null``: HTTP 200 with a ``null`` body.
- ``empty``: HTTP 200 with an empty array for a collection (a record by id is unchanged).
- ``drift``: schema drift: every record gains an unknown field and sends a number as a
  string (``price``, ``rating.count``, ``userId``, ``address.number``).

A kind alone is that kind on every request (``drift`` is ``drift=1``).
Example: ``--faults error=x2,ratelimit=0.1,latency=0.05``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Final, Literal

FaultKind = Literal["error", "ratelimit", "hang", "malformed", "null", "empty", "drift"]
KINDS: Final[tuple[FaultKind, ...]] = (
    "error",
    "ratelimit",
    "hang",
    "malformed",
    "null",
    "empty",
    "drift",
)
_SECONDS: Final = ("latency", "retry_after", "hang_for")


@dataclass
class _Trigger:
    probability: float = 0.0
    first: int = 0

    def fires(self, request_no: int, rng: random.Random) -> bool:
        if request_no <= self.first:
            return True
        return self.probability > 0 and rng.random() < self.probability


@dataclass
class FaultPlan:
    """Which faults a server injects; parse one with :meth:`parse`."""

    triggers: dict[FaultKind, _Trigger] = field(default_factory=dict)
    latency: float = 0.0
    retry_after: float = 1.0
    hang_for: float = 300.0
    seed: int = 0
    requests: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.seed}:faults")

    @classmethod
    def parse(cls, spec: str | None, seed: int = 0) -> FaultPlan:
        plan = cls(seed=seed)
        for item in filter(None, (part.strip() for part in (spec or "").split(","))):
            name, sep, value = item.partition("=")
            if not sep and name.strip() in KINDS:
                value = "1"  # a kind alone: every request (``--faults drift``)
            elif not sep:
                raise ValueError(f"fault {item!r}: expected kind=value")
            try:
                plan._set(name.strip(), value.strip())
            except ValueError as exc:
                raise ValueError(f"fault {item!r}: {exc}") from None
        return plan

    def _set(self, name: str, value: str) -> None:
        if name in _SECONDS:
            seconds = float(value)
            if seconds < 0:
                raise ValueError("seconds must be >= 0")
            setattr(self, name, seconds)
        elif name in KINDS:
            self.triggers[name] = _trigger(value)  # type: ignore[index]
        else:
            raise ValueError(f"unknown kind; known: {', '.join((*KINDS, *_SECONDS))}")

    def draw(self) -> FaultKind | None:
        """The fault for the next request, if any (the first listed kind wins)."""
        self.requests += 1
        for kind in KINDS:
            trigger = self.triggers.get(kind)
            if trigger and trigger.fires(self.requests, self._rng):
                return kind
        return None


def _trigger(value: str) -> _Trigger:
    if value.startswith("x"):
        count = int(value[1:])
        if count < 0:
            raise ValueError("count must be >= 0")
        return _Trigger(first=count)
    probability = float(value)
    if not 0 <= probability <= 1:
        raise ValueError("probability must be in [0, 1]")
    return _Trigger(probability=probability)


def drift(record: Any) -> Any:
    """The record as a drifting upstream might send it: an unknown field, and numbers
    as strings."""
    if not isinstance(record, dict):
        return record
    record["promo_code"] = "DRIFT-1"
    if "price" in record:
        record["price"] = str(record["price"])
    if isinstance(record.get("rating"), dict):
        record["rating"]["count"] = str(record["rating"]["count"])
    if "userId" in record:
        record["userId"] = str(record["userId"])
    if isinstance(record.get("address"), dict) and "number" in record["address"]:
        record["address"]["number"] = str(record["address"]["number"])
    return record
