"""Validation at the edge: bad records are rejected with a reason, never dropped."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ey_platform.validation import validate_batch

PRODUCT = {
    "id": 1,
    "title": "Backpack",
    "price": 109.95,
    "description": "d",
    "category": "men's clothing",
    "image": "https://x/1.jpg",
    "rating": {"rate": 3.9, "count": 120},
}
USER = {
    "address": {
        "geolocation": {"lat": "-37.3159", "long": "81.1496"},
        "city": "kilcoole",
        "street": "new road",
        "number": 7682,
        "zipcode": "12926-3874",
    },
    "id": 1,
    "email": "john@gmail.com",
    "username": "johnd",
    "name": {"firstname": "john", "lastname": "doe"},
    "phone": "1-570-236-7033",
    "__v": 0,
}
CART = {
    "id": 1,
    "userId": 1,
    "date": "2020-03-02T00:00:00.000Z",
    "products": [{"productId": 1, "quantity": 4}],
    "__v": 0,
}


def _with(record: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(record)
    *parents, leaf = path.split(".")
    target = out
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[leaf]
    else:
        target[leaf] = value
    return out


@pytest.mark.parametrize(
    ("entity", "record"),
    [
        ("products", PRODUCT),
        ("products", _with(PRODUCT, "price", 64)),  # integer price
        ("products", _with(PRODUCT, "rating", KeyError)),  # rating missing
        ("products", _with(PRODUCT, "rating.count", "259")),  # count as a string
        ("products", _with(PRODUCT, "brand", "new")),  # unknown field
        ("users", USER),
        ("users", _with(USER, "__v", KeyError)),
        ("carts", CART),
    ],
    ids=[
        "product",
        "int-price",
        "no-rating",
        "string-count",
        "extra-field",
        "user",
        "no-v",
        "cart",
    ],
)
def test_quirks_of_the_public_api_are_valid(entity: Any, record: dict[str, Any]) -> None:
    result = validate_batch(entity, [record])
    assert result.valid == [record] and result.rejected == []


@pytest.mark.parametrize(
    ("entity", "record", "reason"),
    [
        (
            "products",
            _with(PRODUCT, "price", "cheap"),
            "price: Input should be a valid decimal (got 'cheap')",
        ),
        ("products", _with(PRODUCT, "price", -1), "price: Input should be greater than or equal"),
        ("products", _with(PRODUCT, "title", KeyError), "title: Field required"),
        ("users", _with(USER, "address.geolocation.lat", "north"), "address.geolocation.lat:"),
        ("users", _with(USER, "address.geolocation.lat", "91.5"), "less than or equal to 90"),
        ("carts", _with(CART, "date", "yesterday"), "date: Input should be a valid datetime"),
        (
            "carts",
            _with(CART, "products", [{"productId": 1, "quantity": 0}]),
            "products.0.quantity: Input should be greater than or equal to 1",
        ),
        ("carts", "not a cart", "record: Input should be a valid dictionary"),
    ],
    ids=[
        "price-text",
        "negative-price",
        "no-title",
        "bad-lat",
        "lat-range",
        "bad-date",
        "zero-quantity",
        "not-an-object",
    ],
)
def test_bad_records_are_rejected_with_the_field_named(
    entity: Any, record: Any, reason: str
) -> None:
    good = {"products": PRODUCT, "users": USER, "carts": CART}[entity]
    result = validate_batch(entity, [good, record, good])
    assert result.valid == [good, good]
    assert len(result.rejected) == 1
    assert result.rejected[0].record == record
    assert reason in result.rejected[0].reason


def test_gate_json_keeps_the_text_as_received() -> None:
    import orjson

    from ey_platform.validation import gate_json

    text = (
        b'[{"id":1,"userId":1,"date":"2020-03-02T00:00:00.000Z","products":[],"x":1.50},'
        b'{"id":2,"userId":"2","date":"2020-03-02T00:00:00.000Z","products":[]}]'
    )
    gated = gate_json("carts", text)
    assert (gated.valid, gated.rejected) == (2, [])
    assert gated.jsonl.splitlines()[0].endswith(b'"x":1.50}')  # not 1.5: the text is kept
    bad = text.replace(b'"userId":"2"', b'"userId":"two"')
    gated = gate_json("carts", bad)
    assert gated.valid == 1
    assert gated.rejected[0].record["userId"] == "two"
    assert "userId: Input should be a valid integer" in gated.rejected[0].reason
    assert [orjson.loads(line)["id"] for line in gated.jsonl.splitlines()] == [1]


def test_gate_json_raises_value_error_on_invalid_json() -> None:
    from ey_platform.validation import gate_json

    with pytest.raises(ValueError, match="EOF while parsing"):
        gate_json("carts", b'[{"id":1,')
