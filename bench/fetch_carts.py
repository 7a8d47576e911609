"""Fetch and validate N carts from the bundled server: records/s and peak RSS.

Run as a child process by :mod:`bench.__main__`: ``python -m bench.fetch_carts URL``.
It also times the textbook way (one ``BaseModel`` per record over a fully parsed body)
on the same answer, for the ratio.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any

from bench.harness import peak_rss_mb
from ey_platform.pipelines.extract import count_valid
from ey_platform.source.client import FakeStoreClient


def platform_way(url: str) -> dict[str, Any]:
    with FakeStoreClient(url) as client:
        start = time.perf_counter()
        counts = count_valid(client, "carts")
        seconds = time.perf_counter() - start
    assert counts.valid == counts.extracted
    return {"records": counts.extracted, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def textbook_way(url: str) -> dict[str, Any]:
    import httpx
    from pydantic import BaseModel

    class Line(BaseModel):
        productId: int  # noqa: N815
        quantity: int

    class Cart(BaseModel):
        id: int
        userId: int  # noqa: N815
        date: datetime
        products: list[Line]

    start = time.perf_counter()
    records = httpx.get(f"{url}/carts", timeout=120).json()
    carts = [Cart.model_validate(r) for r in records]
    seconds = time.perf_counter() - start
    return {"records": len(carts), "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


if __name__ == "__main__":
    way = {"platform": platform_way, "textbook": textbook_way}[sys.argv[1]]
    print(json.dumps(way(sys.argv[2])))
