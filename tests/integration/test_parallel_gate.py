"""Validation in worker processes: in order, exact, and repaired where a speculative cut
fell inside a record."""

from __future__ import annotations

import json
import random
from datetime import date
from pathlib import Path

import orjson
import pytest

from ey_platform.errors import MalformedResponse
from ey_platform.lake.local import LocalLake
from ey_platform.pipelines.batch import BatchPipeline
from ey_platform.pipelines.extract import _OrderedGate
from ey_platform.source.client import FakeStoreClient
from ey_platform.source.data import Catalog
from ey_platform.source.jsonstream import iter_array_texts
from ey_platform.source.server import create_app, serve_in_thread
from ey_platform.warehouse.duckdb import DuckDBWarehouse


def _carts(n: int, nested: bool) -> list[dict[str, object]]:
    rng = random.Random(n)
    carts = []
    for i in range(1, n + 1):
        cart: dict[str, object] = {
            "id": i,
            "userId": rng.randint(1, 9),
            "date": "2020-03-02T00:00:00.000Z",
            "products": [{"productId": rng.randint(1, 20), "quantity": 1}],
        }
        if nested:  # objects whose first key is the records' first key: false boundaries
            cart["history"] = [{"id": rng.randint(1, 99)} for _ in range(rng.randint(2, 4))]
        carts.append(cart)
    return carts


def _texts(records: list[dict[str, object]], batch_bytes: int) -> list[bytes]:
    body = orjson.dumps(records)
    return list(
        iter_array_texts([body[i : i + 997] for i in range(0, len(body), 997)], batch_bytes)
    )


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("nested", [False, True], ids=["clean-cuts", "false-boundaries"])
def test_gated_batches_are_the_records_in_order(workers: int, nested: bool) -> None:
    carts = _carts(3000, nested)
    texts = _texts(carts, batch_bytes=4096)
    wrong_cuts = sum(1 for t in texts if not _is_json(t))
    assert (wrong_cuts > 0) == nested  # the repair path really runs
    with _OrderedGate("carts", workers) as gate:
        batches = list(gate.run(iter(texts)))
    lines = [orjson.loads(line) for b in batches for line in b.jsonl.splitlines()]
    assert lines == carts
    assert sum(b.valid for b in batches) == 3000


def test_a_truncated_body_is_a_clear_error() -> None:
    texts = _texts(_carts(2000, nested=True), batch_bytes=4096)
    texts[-1] = texts[-1][:-40]
    with (
        _OrderedGate("carts", 2) as gate,
        pytest.raises(MalformedResponse, match="GET /carts: body"),
    ):
        list(gate.run(iter(texts)))


def test_rejects_are_found_in_worker_batches() -> None:
    carts = _carts(3000, nested=False)
    carts[1500]["userId"] = "nobody"
    with _OrderedGate("carts", 2) as gate:
        batches = list(gate.run(iter(_texts(carts, batch_bytes=4096))))
    rejected = [r for b in batches for r in b.rejected]
    assert [r.record["id"] for r in rejected] == [1501]
    assert sum(b.valid for b in batches) == 2999


def _is_json(text: bytes) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.slow
def test_batch_with_workers_lands_every_user_once(tmp_path: Path) -> None:
    with (
        serve_in_thread(create_app(Catalog(n_users=20_000))) as url,
        FakeStoreClient(url, batch_bytes=256 << 10) as client,
    ):
        warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
        pipeline = BatchPipeline(
            LocalLake(tmp_path / "lake"), warehouse, client, part_bytes=1 << 20, workers=2
        )
        (result,) = pipeline.run(["users"], date(2026, 1, 1))
    assert (result.extracted, result.loaded) == (20_000, 20_000)
    assert len(result.parts) > 3
    ids = [r[0] for r in warehouse.query("SELECT id FROM bq_raw.users ORDER BY id")]
    assert ids == list(range(1, 20_001))
    lake = b"".join(p.read_bytes() for p in sorted((tmp_path / "lake").rglob("*.jsonl")))
    assert b"password" not in lake
