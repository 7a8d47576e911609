"""Passwords are removed from user JSON text, whatever its shape."""

from __future__ import annotations

import json

import pytest

from ey_platform.source.client import scrub_passwords


@pytest.mark.parametrize(
    "records",
    [
        [{"id": 1, "username": "a", "password": "m38rmF$", "phone": "1"}],
        [{"password": "first", "id": 1}, {"id": 2, "password": "last"}],
        [{"id": 1, "password": 'has "quotes" and \\ backslash'}],
        [{"id": 1, "password": 12345}],  # not a string
        [{"id": 1, "password": "password"}],  # the word itself
        [{"id": 1, "bio": "my password is: secret", "password": "x1"}],
        [{"id": 1, "password": ""}, {"id": 2}],
    ],
    ids=["middle", "first-and-last", "escapes", "number", "word", "in-text", "empty"],
)
@pytest.mark.parametrize("indent", [None, 1])
def test_no_password_survives(records: list[dict[str, object]], indent: int | None) -> None:
    text = json.dumps(records, indent=indent, separators=None if indent else (",", ":")).encode()
    scrubbed = json.loads(scrub_passwords(text))
    expected = [{k: v for k, v in r.items() if k != "password"} for r in records]
    assert scrubbed == expected


def test_compact_text_keeps_its_bytes() -> None:
    text = b'[{"id":1,"price":1.10,"password":"x","z":"a"}]'
    assert scrub_passwords(text) == b'[{"id":1,"price":1.10,"z":"a"}]'
