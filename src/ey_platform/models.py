"""Pydantic schemas of the FakeStore records, exactly as the public API sends them.

The records are validated at the edge in bulk: a ``TypeAdapter`` over a list of
``TypedDict`` schemas validates a batch in one call to pydantic-core, with no Python
object built per record (``bench/RESULTS.md`` has the comparison with ``BaseModel``).
Validation is a gate: the validated copy is thrown away and the raw dict, as received,
is what lands in the lake, so fields the schema does not know are kept and numbers keep
their exact text. The schemas therefore ignore unknown fields (pydantic's default for a
``TypedDict``; ``extra="allow"`` would copy them, for nothing). The user's
``password`` is removed by the client before anything else sees the record.

Quirks of the public API that the schemas accept on purpose:

- ``price`` is an integer or a decimal: validated as ``Decimal`` (exact), landed as sent.
- ``rating`` may be missing; ``rating.count`` has been seen as a string (``"259"``).
- ``address.geolocation.lat``/``long`` are strings holding numbers.
- users and carts carry Mongo's ``__v``; cart dates are ISO-8601 UTC with milliseconds.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, NotRequired, get_args

from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict

Entity = Literal["products", "users", "carts"]
ENTITIES: Final[tuple[Entity, ...]] = ("products", "users", "carts")
BATCH_ENTITIES: Final[tuple[Entity, ...]] = ("products", "users")


NonNegative = Annotated[Decimal, Field(ge=0)]
# Geolocation arrives as strings that must hold numbers in range. The gate checks them
# as floats, which pydantic-core range-checks without a Decimal; the exact text is what
# lands.
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class Rating(TypedDict):
    rate: Annotated[Decimal, Field(ge=0, le=5)]
    count: Annotated[int, Field(ge=0)]


class Product(TypedDict):
    id: Annotated[int, Field(ge=1)]
    title: str
    price: NonNegative
    description: str
    category: str
    image: str
    rating: NotRequired[Rating]


class Geolocation(TypedDict):
    lat: Latitude
    long: Longitude


class Address(TypedDict):
    geolocation: NotRequired[Geolocation]
    city: str
    street: str
    number: int
    zipcode: str


class Name(TypedDict):
    firstname: str
    lastname: str


# Functional syntax: ``__v`` in a class body would be name-mangled.
User = TypedDict(
    "User",
    {
        "id": Annotated[int, Field(ge=1)],
        "email": str,
        "username": str,
        "name": Name,
        "address": Address,
        "phone": str,
        "__v": NotRequired[int],
    },
)


class CartLine(TypedDict):
    productId: Annotated[int, Field(ge=1)]
    quantity: Annotated[int, Field(ge=1)]


Cart = TypedDict(
    "Cart",
    {
        "id": Annotated[int, Field(ge=1)],
        "userId": Annotated[int, Field(ge=1)],
        "date": datetime,
        "products": list[CartLine],
        "__v": NotRequired[int],
    },
)

SCHEMAS: Final[dict[Entity, Any]] = {"products": Product, "users": User, "carts": Cart}


def batch_adapter(entity: Entity) -> TypeAdapter[list[Any]]:
    """The adapter that validates a whole batch of ``entity`` records in one call."""
    # Caching only keys: values (emails, names) rarely repeat.
    return TypeAdapter(list[SCHEMAS[entity]], config={"cache_strings": "keys"})  # type: ignore[valid-type]


# -- the cart events on the bus ------------------------------------------------------

EVENT_SCHEMA_VERSION: Final = 1


# 32 lowercase hex digits: an event id or a content hash, as the poller derives them.
Hex32 = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
ChangeType = Literal["cart_created", "cart_updated"]
DeleteType = Literal["cart_deleted"]
EVENT_TYPES: Final[frozenset[str]] = frozenset(get_args(ChangeType) + get_args(DeleteType))


class _EventBase(TypedDict):
    schema_version: Literal[1]
    event_id: Hex32
    cart_id: Annotated[int, Field(ge=1)]
    cart_version: Annotated[int, Field(ge=1)]
    extracted_at: datetime
    published_at: datetime


class CartChanged(_EventBase):
    event_type: ChangeType
    content_hash: Hex32
    cart: Cart


class CartDeleted(_EventBase):
    event_type: DeleteType
    content_hash: None
    cart: None


CartEvent = Annotated[CartChanged | CartDeleted, Field(discriminator="event_type")]
"""One message on ``carts-events``. ``cart`` is the cart as the API sent it, and null
for a deletion; ``event_id`` is derived from the cart id, its version and its content,
so a re-publish after a crash carries the same id."""


def event_adapter() -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[CartEvent], config={"strict": False, "cache_strings": "keys"})
