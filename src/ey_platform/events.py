"""Cart events on the wire: their ids, the content digest of a cart, the encoding of
a message and the check of a pulled batch against the event model
(:mod:`ey_platform.models`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from ey_platform.bus.base import Message, Received
from ey_platform.models import EVENT_SCHEMA_VERSION, EVENT_TYPES, event_adapter


def content_hash(cart_json: bytes) -> str:
    return hashlib.blake2b(cart_json, digest_size=16).hexdigest()


def event_id(cart_id: int, version: int, event_type: str, digest: str | None) -> str:
    """Deterministic: the same change of the same cart always has the same id, and two
    changes never share one (the version grows with every change)."""
    key = f"{cart_id}:{version}:{event_type}:{digest or '-'}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


class Change(NamedTuple):
    """A change to publish. (A tuple: a million are made in a first poll.)"""

    cart_id: int
    version: int
    kind: str
    digest: str | None
    cart_json: bytes | None


_SCHEMA_VERSION = str(EVENT_SCHEMA_VERSION)


def encode(events: list[Change], extracted_at: datetime, published_at: datetime) -> list[Message]:
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


@dataclass
class CheckedBatch:
    valid: list[Received] = field(default_factory=list)
    invalid: list[tuple[Received, str]] = field(default_factory=list)


_EVENTS = event_adapter()


def check_events(messages: list[Received]) -> CheckedBatch:
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
        return CheckedBatch(
            [m for i, m in enumerate(messages) if i not in bad],
            [(messages[i], reason) for i, reason in bad.items()],
        )
    return CheckedBatch(messages)


def _check_one_by_one(messages: list[Received]) -> CheckedBatch:
    checked = CheckedBatch()
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
