"""The array splitter: batches decode exactly what one json.loads of the body would."""

from __future__ import annotations

import json
import random

import pytest

from ey_platform.source.jsonstream import (
    JSONStreamError,
    NotAnArray,
    array_to_jsonl,
    iter_array_batches,
)


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
    ("body", "value"), [(b"", None), (b"  null ", None), (b'{"a": 1}', {"a": 1}), (b'"t"', "t")]
)
def test_a_body_that_is_not_an_array_says_what_it_is(body: bytes, value: object) -> None:
    with pytest.raises(NotAnArray) as info:
        list(iter_array_batches([body]))
    assert info.value.value == value


@pytest.mark.parametrize(("body", "expected"), [(b"  []  ", []), (b"[1, 2, 3]", [[1, 2, 3]])])
def test_small_arrays(body: bytes, expected: list[object]) -> None:
    assert list(iter_array_batches([body])) == expected


def test_the_decoder_sees_each_batch_as_array_text() -> None:
    body = json.dumps([{"id": i} for i in range(300)]).encode()
    texts = list(iter_array_batches(_chunks(body, 50), batch_bytes=400, decode=_checked))
    assert len(texts) > 3
    assert [r for t in texts for r in json.loads(t)] == json.loads(body)


def _checked(text: bytes) -> bytes:
    json.loads(text)  # raises ValueError on a wrong cut, as a decoder must
    return text


@pytest.mark.parametrize("body", [b'[{"id": 1}, {"id": 2', b"[1, 2,", b"not json", b'{"a": '])
def test_invalid_json_raises_with_an_offset(body: bytes) -> None:
    with pytest.raises(JSONStreamError, match=r"at byte \d+"):
        list(iter_array_batches(_chunks(body, 3), batch_bytes=4))


def test_truncation_after_many_batches_is_still_detected() -> None:
    body = json.dumps([{"id": i} for i in range(2000)]).encode()[:-5]
    with pytest.raises(JSONStreamError):
        list(iter_array_batches(_chunks(body, 512), batch_bytes=1024))


def _compact(records: list[object]) -> bytes:
    return json.dumps(records, separators=(",", ":"), ensure_ascii=False).encode()


REQUIRED = frozenset({"id", "address"})


def test_jsonl_is_the_elements_byte_for_byte() -> None:
    records = [{"id": 1, "price": 1.10, "n": {"id": 5}}, {"id": 2, "price": 64, "s": "a\\"}]
    text = b'[{"id":1,"price":1.10,"x":{"k":[{"a":1},{"b":2}]}},{"id":2,"price":64e0}]'
    assert array_to_jsonl(text, 2, REQUIRED) == (
        b'{"id":1,"price":1.10,"x":{"k":[{"a":1},{"b":2}]}}\n{"id":2,"price":64e0}\n'
    )
    assert array_to_jsonl(_compact(records), 2, REQUIRED) is None  # nested "id": not provable
    assert array_to_jsonl(b"[]", 0, REQUIRED) == b""


@pytest.mark.parametrize(
    "text",
    [
        b'[{"id":1,"kids":[{"id":9},{"id":8}]},{"id":2}]',  # nested objects with the key
        b'[{"id":1},{"address":{"id":3},"id":2}]',  # an element with another first key
        b'[{"id":1}, {"id":2}]',  # not compact
        b'[{"id":1,"v":"id"},{"id":2}]',  # the key as a value
        b'[{"nope":1},{"nope":2}]',  # first key not a required field
    ],
    ids=["nested", "other-first-key", "spaces", "value", "not-required"],
)
def test_jsonl_is_refused_when_not_provably_exact(text: bytes) -> None:
    assert array_to_jsonl(text, len(json.loads(text)), REQUIRED) is None


def test_boundary_like_text_inside_strings_is_not_a_boundary() -> None:
    text = b'[{"id":1,"note":"x\\"},{\\"id\\":2"},{"id":3}]'
    out = array_to_jsonl(text, 2, REQUIRED)
    assert out is not None
    assert [json.loads(line) for line in out.splitlines()] == json.loads(text)


def test_random_arrays_split_exactly_or_not_at_all() -> None:
    rng = random.Random(7)
    keys = ["id", "a", "b"]
    for _ in range(300):
        records = []
        for i in range(rng.randint(1, 6)):
            rec: dict[str, object] = {"id": i} if rng.random() < 0.9 else {"a": 1, "id": i}
            if rng.random() < 0.3:
                rec["kids"] = [{rng.choice(keys): 1} for _ in range(rng.randint(0, 3))]
            if rng.random() < 0.3:
                rec["s"] = rng.choice(['},{"id":', "id", '\\"id', "}", "{"])
            records.append(rec)
        text = _compact(records)
        out = array_to_jsonl(text, len(records), REQUIRED)
        if out is not None:
            assert [json.loads(line) for line in out.splitlines()] == records
