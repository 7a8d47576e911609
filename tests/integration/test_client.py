"""The FakeStore client against the real bundled server on loopback."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import orjson
import pytest

from ey_platform.errors import MalformedResponse, SourceError, SourceUnavailable
from ey_platform.settings import HttpSettings
from ey_platform.source.client import FakeStoreClient, Query
from ey_platform.source.data import CATEGORIES
from ey_platform.source.server import free_port
from ey_platform.validation import validate_batch
from tests.conftest import FAST_HTTP, FakeStore, Sleeps


def _all(client: FakeStoreClient, entity: str, **kw: object) -> list[dict]:
    return [r for batch in client.iter_entity(entity, **kw) for r in batch]  # type: ignore[arg-type]


def test_default_size_mirrors_the_public_api(client: FakeStoreClient) -> None:
    products = _all(client, "products")
    assert [p["id"] for p in products] == list(range(1, 21))
    assert sorted({p["category"] for p in products}) == sorted(CATEGORIES)
    assert len(_all(client, "users")) == 10
    carts = _all(client, "carts")
    assert len(carts) == 7
    assert all(c["date"].startswith("2020-") and c["date"].endswith(".000Z") for c in carts)
    assert all(c["__v"] == 0 for c in carts)


def test_limit_and_sort(client: FakeStoreClient) -> None:
    assert [p["id"] for p in _all(client, "products", limit=3)] == [1, 2, 3]
    assert [p["id"] for p in _all(client, "products", sort="desc", limit=2)] == [20, 19]


def test_cart_date_filter_end_is_exclusive(client: FakeStoreClient) -> None:
    carts = [c for b in client.iter_carts(start=date(2020, 3, 1), end=date(2020, 3, 2)) for c in b]
    assert sorted(c["id"] for c in carts) == [3, 5, 6, 7]  # cart 1 is dated 2020-03-02
    everything = [c for b in client.iter_carts(start=date(2020, 1, 1)) for c in b]
    assert len(everything) == 7


def test_carts_of_a_user_and_categories(client: FakeStoreClient) -> None:
    assert [c["id"] for c in client.collection("/carts/user/1")] == [1, 2]
    assert client.categories() == list(CATEGORIES)
    jewelery = client.collection("/products/category/jewelery")
    assert jewelery and {p["category"] for p in jewelery} == {"jewelery"}


def test_unknown_id_is_none_and_known_id_is_the_record(client: FakeStoreClient) -> None:
    assert client.get("products", 999) is None
    product = client.get("products", 1)
    assert product is not None and product["id"] == 1


def test_integer_price_is_kept_exact(client: FakeStoreClient) -> None:
    products = _all(client, "products")
    integer = [p for p in products if isinstance(p["price"], int)]
    decimal = [p for p in products if isinstance(p["price"], float)]
    assert integer and decimal
    assert not validate_batch("products", products).rejected
    assert Decimal(str(decimal[0]["price"])).as_tuple().exponent >= -2


def test_password_never_leaves_the_client(fakestore: FakeStore, client: FakeStoreClient) -> None:
    passwords = [orjson.loads(r)["password"] for r in fakestore.state.catalog.users.rows.values()]
    users = [*_all(client, "users"), client.get("users", 1)]
    assert all("password" not in u for u in users)
    blob = orjson.dumps(users).decode()
    assert not any(pw in blob for pw in passwords)


def test_5xx_is_retried_with_growing_jittered_backoff(
    fakestore: FakeStore, client: FakeStoreClient, sleeps: Sleeps
) -> None:
    fakestore.faults("error=x3")
    assert len(_all(client, "products")) == 20
    assert len(sleeps.calls) == 3
    for attempt, delay in enumerate(sleeps.calls, start=1):
        assert 0 <= delay <= FAST_HTTP.backoff_base * 2 ** (attempt - 1)


def test_429_honours_retry_after(
    fakestore: FakeStore, client: FakeStoreClient, sleeps: Sleeps
) -> None:
    fakestore.faults("ratelimit=x1,retry_after=7")
    assert len(_all(client, "users")) == 10
    assert sleeps.calls == [7.0]


def test_retry_after_beyond_the_limit_gives_up_clearly(
    fakestore: FakeStore, sleeps: Sleeps
) -> None:
    fakestore.faults("ratelimit=1,retry_after=600")
    http = FAST_HTTP.model_copy(update={"retry_after_max": 60})
    with (
        FakeStoreClient(fakestore.url, http, sleep=sleeps) as client,
        pytest.raises(SourceUnavailable, match=r"GET /carts asked to retry after 600s"),
    ):
        _all(client, "carts")


def test_persistent_5xx_ends_in_one_clear_error(
    fakestore: FakeStore, client: FakeStoreClient, sleeps: Sleeps
) -> None:
    fakestore.faults("error=1")
    with pytest.raises(SourceUnavailable) as info:
        _all(client, "products", limit=5)
    message = str(info.value)
    assert "GET /products?limit=5" in message
    assert "after 4 attempts" in message and "HTTP 503" in message
    assert len(sleeps.calls) == 3


def test_a_hang_times_out_and_is_retried(fakestore: FakeStore, client: FakeStoreClient) -> None:
    fakestore.faults("hang=x1,hang_for=5")
    assert len(_all(client, "carts")) == 7
    fakestore.faults("hang=1,hang_for=5")
    with pytest.raises(SourceUnavailable, match="no answer in time"):
        client.get("carts", 1)


def test_connection_refused_is_retried_then_reported(sleeps: Sleeps) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        FakeStoreClient(url, FAST_HTTP, sleep=sleeps) as client,
        pytest.raises(SourceUnavailable, match="connection error"),
    ):
        client.categories()
    assert len(sleeps.calls) == FAST_HTTP.max_attempts - 1


def test_4xx_is_not_retried(client: FakeStoreClient, sleeps: Sleeps) -> None:
    with pytest.raises(SourceError, match="HTTP 404"):
        client.collection("/no-such-thing")
    assert sleeps.calls == []


def test_malformed_json_is_a_clear_error(fakestore: FakeStore, client: FakeStoreClient) -> None:
    fakestore.faults("malformed=1")
    with pytest.raises(MalformedResponse, match=r"GET /products: body is not valid JSON"):
        _all(client, "products")


def test_null_body_means_not_found_for_one_record(
    fakestore: FakeStore, client: FakeStoreClient
) -> None:
    fakestore.faults("null=1")
    assert client.get("users", 1) is None


@pytest.mark.parametrize("read", ["records", "texts"])
def test_null_body_of_a_collection_is_retried_then_fails(
    fakestore: FakeStore, client: FakeStoreClient, sleeps: Sleeps, read: str
) -> None:
    fakestore.faults("null=1")
    with pytest.raises(SourceUnavailable, match=r"GET /products failed after 4 attempts; .*null"):
        list(client.iter_entity("products") if read == "records" else client.iter_texts("products"))
    assert len(sleeps.calls) == FAST_HTTP.max_attempts - 1


def test_a_null_collection_once_is_retried_and_read_whole(
    fakestore: FakeStore, client: FakeStoreClient, sleeps: Sleeps
) -> None:
    fakestore.faults("null=x1")
    assert len(_all(client, "products")) == 20
    assert len(sleeps.calls) == 1


def test_wrong_shape_is_a_clear_error(client: FakeStoreClient) -> None:
    with pytest.raises(MalformedResponse, match="GET /products/1: expected a JSON array, got an"):
        list(client.iter_collection(Query("/products/1")))


def test_schema_drift_is_tolerated_and_kept(fakestore: FakeStore, client: FakeStoreClient) -> None:
    fakestore.faults("drift=1")
    products, users, carts = (_all(client, e) for e in ("products", "users", "carts"))
    assert isinstance(products[0]["price"], str)
    assert isinstance(products[0]["rating"]["count"], str)  # "259", as seen on the public API
    assert all(p["promo_code"] == "DRIFT-1" for p in products)  # unknown field kept
    assert isinstance(carts[0]["userId"], str) and isinstance(users[0]["address"]["number"], str)
    for entity, records in (("products", products), ("users", users), ("carts", carts)):
        assert not validate_batch(entity, records).rejected  # type: ignore[arg-type]


def test_latency_is_added(fakestore: FakeStore, client: FakeStoreClient) -> None:
    import time

    fakestore.faults("latency=0.2")
    start = time.perf_counter()
    client.categories()
    assert time.perf_counter() - start >= 0.2


def test_large_response_streams_in_batches(sleeps: Sleeps) -> None:
    from ey_platform.source.data import Catalog
    from ey_platform.source.server import create_app, serve_in_thread

    with (
        serve_in_thread(create_app(Catalog(n_carts=20_000))) as url,
        FakeStoreClient(url, HttpSettings(), batch_bytes=64 << 10, sleep=sleeps) as client,
    ):
        batches = list(client.iter_entity("carts"))
    assert len(batches) > 10
    ids = [c["id"] for batch in batches for c in batch]
    assert ids == list(range(1, 20_001))
