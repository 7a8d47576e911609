"""The array splitter: batches decode exactly what one json.loads of the body would."""

from __future__ import annotations

import json
import random

import pytest

from ey_platform.source.jsonstream import JSONStreamError, iter_array_batches


def _chunks(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def _flatten(body: bytes, chunk: int, batch_bytes: int) -> list[object]:
    out: list[object] = []
    for batch in iter_array_batches(_chunks(body, chunk), batch_bytes=batch_bytes):
        assert isinstance(batch, list)
        out.extend(batch)
    return out


TRICKY = [
    {"id": 1, "note": '},{"id": 2, "x": [1, 2]}', "nested": [{"id": 9}, {"id": 10}]},
    {"id": 2, "note": '\\"},{', "products": [{"productId": 1}, {"productId": 2}]},
    {"id": 3, "unicode": "é€😀", "empty": {}, "list": []},
]


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("chunk", [1, 7, 64, 4096])
def test_batches_concatenate_to_the_whole_array(indent: int | None, chunk: int) -> None:
    rng = random.Random(chunk)
    records = [
        *TRICKY,
        *({"id": i, "v": rng.random(), "tags": ["a}", "{b"]} for i in range(4, 500)),
    ]
    body = json.dumps(records, indent=indent).encode()
    assert _flatten(body, chunk, batch_bytes=256) == records


def test_a_small_batch_size_gives_several_batches() -> None:
    body = json.dumps([{"id": i} for i in range(1000)]).encode()
    batches = list(iter_array_batches(_chunks(body, 100), batch_bytes=500))
    assert len(batches) > 5
    assert [r["id"] for b in batches for r in b] == list(range(1000))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", [None]),
        (b"null", [None]),
        (b"  []  ", []),
        (b'{"a": 1}', [{"a": 1}]),
        (b"[1, 2, 3]", [[1, 2, 3]]),
    ],
)
def test_non_array_and_empty_bodies(body: bytes, expected: list[object]) -> None:
    assert list(iter_array_batches([body])) == expected


@pytest.mark.parametrize("body", [b'[{"id": 1}, {"id": 2', b"[1, 2,", b"not json", b'{"a": '])
def test_invalid_json_raises_with_an_offset(body: bytes) -> None:
    with pytest.raises(JSONStreamError, match=r"at byte \d+"):
        list(iter_array_batches(_chunks(body, 3), batch_bytes=4))


def test_truncation_after_many_batches_is_still_detected() -> None:
    body = json.dumps([{"id": i} for i in range(2000)]).encode()[:-5]
    with pytest.raises(JSONStreamError):
        list(iter_array_batches(_chunks(body, 512), batch_bytes=1024))
