"""Synthetic FakeStore data: deterministic from a seed, at any size.

The default size and shape mirror the public API: 20 products in 4 categories, 10 users
and 7 carts dated 2020. Records are kept encoded (one ``bytes`` per record, in id order)
so that the server can answer a million carts without building Python objects for them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

CATEGORIES = ("men's clothing", "jewelery", "electronics", "women's clothing")
# The public API's 20 products: 4, 4, 6 and 6 per category, in id order.
_CATEGORY_SHARE = (4, 4, 6, 6)
_NOUNS = {
    "men's clothing": ("Backpack", "Slim Fit T-Shirt", "Cotton Jacket", "Casual Shirt"),
    "jewelery": ("Chain Bracelet", "Solitaire Ring", "Micropave Ring", "Double Flared Plug"),
    "electronics": ("External Hard Drive", "SSD", "Gaming Drive", "Monitor", "USB Stick"),
    "women's clothing": ("Snowboard Jacket", "Rain Jacket", "Short Sleeve Boat Neck", "Tee"),
}
_ADJECTIVES = ("Classic", "Premium", "Solid", "Lightweight", "Fjallraven", "Opna", "Silicon")
_FIRST = ("john", "david", "kevin", "don", "derek", "david", "miriam", "william", "kate", "jimmie")
_LAST = ("doe", "morrison", "ryan", "romer", "powell", "russell", "snyder", "hopkins", "hale")
_CITIES = ("kilcoole", "Cullman", "San Antonio", "El Paso", "Fresno", "Mesa", "Miami Beach")
_STREETS = ("new road", "Lovers Ln", "Frances Ct", "Hunters Creek Dr", "adams St", "prospect st")
# The public API's 7 carts: owners and dates.
_DEFAULT_CARTS = (
    (1, "2020-03-02"),
    (1, "2020-01-02"),
    (2, "2020-03-01"),
    (3, "2020-01-01"),
    (3, "2020-03-01"),
    (4, "2020-03-01"),
    (8, "2020-03-01"),
)
_YEAR_2020 = datetime(2020, 1, 1, tzinfo=UTC)


def iso_millis(moment: datetime) -> str:
    """The API's timestamp format: ISO-8601 UTC with milliseconds and a Z."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _category(product_id: int, n_products: int) -> str:
    slot = (product_id - 1) * sum(_CATEGORY_SHARE) // max(n_products, 1)
    for category, share in zip(CATEGORIES, _CATEGORY_SHARE, strict=True):
        if slot < share:
            return category
        slot -= share
    return CATEGORIES[-1]


def make_product(rng: random.Random, product_id: int, n_products: int) -> dict[str, Any]:
    category = _category(product_id, n_products)
    noun = rng.choice(_NOUNS[category])
    # About one price in five is a whole number, as on the public API (64, 695, 168 ...).
    cents = rng.randrange(199, 99_999)
    price: int | float = cents // 100 if product_id % 5 == 4 else round(cents / 100, 2)
    return {
        "id": product_id,
        "title": f"{rng.choice(_ADJECTIVES)} {noun} {product_id}",
        "price": price,
        "description": f"A {noun.lower()} for everyday use, item {product_id}.",
        "category": category,
        "image": f"https://fakestoreapi.com/img/{product_id}.jpg",
        "rating": {"rate": round(rng.uniform(1, 5), 1), "count": rng.randrange(0, 700)},
    }


def make_user(rng: random.Random, user_id: int) -> dict[str, Any]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return {
        "address": {
            "geolocation": {
                "lat": f"{rng.uniform(-90, 90):.4f}",
                "long": f"{rng.uniform(-180, 180):.4f}",
            },
            "city": rng.choice(_CITIES),
            "street": rng.choice(_STREETS),
            "number": rng.randrange(1, 9999),
            "zipcode": f"{rng.randrange(10000, 99999)}-{rng.randrange(1000, 9999)}",
        },
        "id": user_id,
        "email": f"{first}.{last}{user_id}@gmail.com",
        "username": f"{first[:4]}{last[:1]}{user_id}",
        "password": f"{rng.choice(_LAST)}{rng.randrange(100, 999)}$",
        "name": {"firstname": first, "lastname": last},
        "phone": "-".join(
            (
                "1",
                str(rng.randrange(200, 999)),
                str(rng.randrange(100, 999)),
                str(rng.randrange(1000, 9999)),
            )
        ),
        "__v": 0,
    }


def make_lines(rng: random.Random, n_products: int) -> list[dict[str, int]]:
    count = min(rng.randint(1, 5), n_products)
    products = (
        rng.sample(range(1, n_products + 1), count)
        if n_products < 64
        else [rng.randint(1, n_products) for _ in range(count)]
    )
    return [{"productId": pid, "quantity": rng.randint(1, 10)} for pid in dict.fromkeys(products)]


def make_cart(
    rng: random.Random, cart_id: int, n_users: int, n_products: int, when: datetime | None = None
) -> dict[str, Any]:
    if when is None and cart_id <= len(_DEFAULT_CARTS) and n_users >= 8:
        user, day = _DEFAULT_CARTS[cart_id - 1]
        when = datetime.fromisoformat(day).replace(tzinfo=UTC)
    else:
        user = rng.randint(1, n_users)
        when = when or _YEAR_2020 + timedelta(seconds=rng.randrange(366 * 86400))
    return {
        "id": cart_id,
        "userId": user,
        "date": iso_millis(when),
        "products": make_lines(rng, n_products),
        "__v": 0,
    }


@dataclass
class Table:
    """Encoded records of one entity in id order, with what the filters need."""

    rows: dict[int, bytes] = field(default_factory=dict)
    category: dict[int, str] = field(default_factory=dict)  # products
    day: dict[int, date] = field(default_factory=dict)  # carts
    owner: dict[int, int] = field(default_factory=dict)  # carts

    def put(self, record: dict[str, Any]) -> None:
        rid = record["id"]
        self.rows[rid] = orjson.dumps(record)
        if "category" in record:
            self.category[rid] = record["category"]
        if "userId" in record:
            self.day[rid] = date.fromisoformat(record["date"][:10])
            self.owner[rid] = record["userId"]

    def delete(self, rid: int) -> None:
        for index in (self.rows, self.category, self.day, self.owner):
            index.pop(rid, None)

    def next_id(self) -> int:
        return next(reversed(self.rows), 0) + 1


@dataclass
class Catalog:
    """The three tables of a FakeStore, generated from ``seed``."""

    seed: int = 42
    n_products: int = 20
    n_users: int = 10
    n_carts: int = 7
    products: Table = field(default_factory=Table)
    users: Table = field(default_factory=Table)
    carts: Table = field(default_factory=Table)

    def __post_init__(self) -> None:
        if min(self.n_products, self.n_users) < 1 or self.n_carts < 0:
            raise ValueError("a catalog needs at least one product and one user")
        rng = random.Random(f"{self.seed}:products")
        for pid in range(1, self.n_products + 1):
            self.products.put(make_product(rng, pid, self.n_products))
        rng = random.Random(f"{self.seed}:users")
        for uid in range(1, self.n_users + 1):
            self.users.put(make_user(rng, uid))
        rng = random.Random(f"{self.seed}:carts")
        for cid in range(1, self.n_carts + 1):
            self.carts.put(make_cart(rng, cid, self.n_users, self.n_products))

    def table(self, entity: str) -> Table:
        return {"products": self.products, "users": self.users, "carts": self.carts}[entity]


class LiveChanges:
    """Makes the catalog move like a real shop: carts appear, change and vanish, and
    prices change now and then. Deterministic from the catalog's seed."""

    def __init__(self, catalog: Catalog, clock: Any = None) -> None:
        self.catalog = catalog
        self.rng = random.Random(f"{catalog.seed}:live")
        self.clock = clock or (lambda: datetime.now(UTC))

    def step(self) -> str:
        """Apply one change and say which kind it was."""
        carts = self.catalog.carts
        roll = self.rng.random()
        if roll < 0.05:
            pid = self.rng.randint(1, self.catalog.n_products)
            product = orjson.loads(self.catalog.products.rows[pid])
            product["price"] = round(float(product["price"]) * self.rng.uniform(0.8, 1.2), 2)
            self.catalog.products.put(product)
            return "price_changed"
        if roll < 0.45 or len(carts.rows) < 2:
            when = self.clock()
            cart = make_cart(
                self.rng, carts.next_id(), self.catalog.n_users, self.catalog.n_products, when
            )
            carts.put(cart)
            return "cart_created"
        rid = self._existing_cart()
        if roll < 0.85:
            cart = orjson.loads(carts.rows[rid])
            cart["products"] = make_lines(self.rng, self.catalog.n_products)
            carts.put(cart)
            return "cart_updated"
        carts.delete(rid)
        return "cart_deleted"

    def _existing_cart(self) -> int:
        rows = self.catalog.carts.rows
        top = self.catalog.carts.next_id() - 1
        for _ in range(16):  # ids are dense, so a random id nearly always exists
            rid = self.rng.randint(1, top)
            if rid in rows:
                return rid
        return self.rng.choice(list(rows))
