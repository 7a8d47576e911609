"""The poller writes each event's envelope as text: it must be the JSON the schema names."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from ey_platform.events import Change, content_hash, encode, event_id
from ey_platform.models import event_adapter

EXTRACTED = datetime(2026, 11, 26, 23, 0, 0, 123456, tzinfo=UTC)
PUBLISHED = datetime(2026, 11, 26, 23, 0, 1, tzinfo=UTC)


def test_a_change_and_a_deletion_are_the_json_of_their_envelope() -> None:
    cart = (
        b'{"id":7,"userId":2,"date":"2020-03-02T00:00:00.000Z",'
        b'"products":[{"productId":1,"quantity":3}],"__v":0}'
    )
    digest = content_hash(cart)
    changed, deleted = encode(
        [Change(7, 2, "cart_updated", digest, cart), Change(8, 3, "cart_deleted", None, None)],
        EXTRACTED,
        PUBLISHED,
    )
    assert orjson.loads(changed.data) == {
        "schema_version": 1,
        "event_id": event_id(7, 2, "cart_updated", digest),
        "event_type": "cart_updated",
        "cart_id": 7,
        "cart_version": 2,
        "content_hash": digest,
        "extracted_at": "2026-11-26T23:00:00.123456+00:00",
        "published_at": "2026-11-26T23:00:01+00:00",
        "cart": orjson.loads(cart),
    }
    assert orjson.loads(deleted.data)["content_hash"] is None
    assert orjson.loads(deleted.data)["cart"] is None
    assert changed.attributes == {
        "event_id": event_id(7, 2, "cart_updated", digest),
        "event_type": "cart_updated",
        "cart_id": "7",
        "schema_version": "1",
    }
    assert (changed.ordering_key, deleted.ordering_key) == ("7", "8")
    # and what the consumer's gate accepts
    event_adapter().validate_json(b"[" + changed.data + b"," + deleted.data + b"]")
