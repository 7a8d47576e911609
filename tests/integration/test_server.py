"""The bundled server behaves like the public API where a client can tell."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from ey_platform.source.data import Catalog, LiveChanges
from ey_platform.source.faults import FaultPlan
from tests.conftest import FakeStore


def test_writes_echo_and_save_nothing(fakestore: FakeStore) -> None:
    with httpx.Client(base_url=fakestore.url) as http:
        created = http.post("/products", json={"title": "new", "price": 1.5}).json()
        assert created == {"id": 21, "title": "new", "price": 1.5}
        assert http.put("/carts/3", json={"userId": 9}).json() == {"id": 3, "userId": 9}
        assert http.patch("/users/2", json={"phone": "1"}).json() == {"id": 2, "phone": "1"}
        deleted = http.delete("/products/4").json()
        assert deleted["id"] == 4
        assert len(http.get("/products").json()) == 20
        assert http.get("/products/4").json()["title"] == deleted["title"]
        assert http.post("/carts", content=b"[1]").status_code == 400


def test_login(fakestore: FakeStore) -> None:
    user = orjson.loads(fakestore.state.catalog.users.rows[1])
    with httpx.Client(base_url=fakestore.url) as http:
        ok = http.post(
            "/auth/login", json={"username": user["username"], "password": user["password"]}
        )
        assert ok.status_code == 200 and len(ok.json()["token"]) > 20
        bad = http.post("/auth/login", json={"username": user["username"], "password": "no"})
        assert bad.status_code == 401 and bad.text == "username or password is incorrect"
        assert http.post("/auth/login", json={}).status_code == 400


def test_unknown_id_is_200_null(fakestore: FakeStore) -> None:
    with httpx.Client(base_url=fakestore.url) as http:
        answer = http.get("/users/77")
    assert answer.status_code == 200 and answer.content == b"null"


def test_same_seed_same_data_other_seed_other_data() -> None:
    one, two, other = Catalog(seed=1), Catalog(seed=1), Catalog(seed=2)
    assert one.products.rows == two.products.rows and one.carts.rows == two.carts.rows
    assert one.products.rows != other.products.rows


def test_live_changes_create_update_delete_and_reprice() -> None:
    catalog = Catalog(seed=3)
    moments = iter(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i) for i in range(500))
    live = LiveChanges(catalog, clock=lambda: next(moments))
    before = dict(catalog.carts.rows)
    kinds = {live.step() for _ in range(200)}
    assert kinds == {"cart_created", "cart_updated", "cart_deleted", "price_changed"}
    after = catalog.carts.rows
    assert set(before) - set(after), "some carts were deleted"
    assert set(after) - set(before), "some carts were created"
    assert any(after[i] != before[i] for i in set(before) & set(after)), "some changed"
    new = orjson.loads(after[max(after)])
    assert new["date"].startswith("2026-01-01T00:")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("latency", "expected kind=value"),  # seconds: no default
        ("boom", "expected kind=value"),
        ("boom=1", "unknown kind"),
        ("error=2", "probability must be in [0, 1]"),
        ("latency=-1", "seconds must be >= 0"),
        ("hang=xx", "invalid literal"),
    ],
)
def test_bad_fault_plans_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        FaultPlan.parse(spec)


def test_a_kind_alone_is_that_fault_on_every_request() -> None:
    plan = FaultPlan.parse("drift, error=x1")
    assert [plan.draw() for _ in range(3)] == ["error", "drift", "drift"]


def test_fault_counts_apply_to_the_first_requests_only() -> None:
    plan = FaultPlan.parse("error=x2,null=x3")
    assert [plan.draw() for _ in range(4)] == ["error", "error", "null", None]
