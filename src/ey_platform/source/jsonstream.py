"""Decode a JSON array that arrives in chunks into batches of records.

The public API answers a collection as one JSON array, with no paging; a million carts
is about 170 MB. Holding that as one Python list costs about 1.7 GB, so the body is cut
into batches of roughly ``batch_bytes`` while it streams in, and each batch is decoded
on its own. A cut is only made where the text before it closes as a valid array, which
happens only between two top-level elements: a cut inside a string or a nested value
leaves the text unbalanced and fails to decode, and the next candidate is tried.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import orjson

# A top-level element that is an object ends with '}' followed by a comma.
_OBJECT_END = re.compile(rb"\}\s*,")
_MAX_TRIES = 32
# Look for a cut only near the end of the buffer, so that a batch is nearly all of it.
_TAIL = 256 << 10


class JSONStreamError(ValueError):
    """The body is not valid JSON; ``offset`` is the byte where decoding gave up."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def _decode(data: bytes | bytearray | memoryview, offset: int) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise JSONStreamError(f"{exc.msg} at byte {offset + exc.pos}", offset + exc.pos) from None


class _ArrayCutter:
    """Holds ``[`` followed by the not yet decoded elements, and cuts batches off it."""

    def __init__(self, batch_bytes: int) -> None:
        self.buf = bytearray()
        self.batch_bytes = batch_bytes
        self.consumed = 0  # bytes of the body already decoded, for error offsets
        self.scan_from = 1
        self.boundary: re.Pattern[bytes] | None = None

    def _boundary(self) -> re.Pattern[bytes]:
        # Prefer '},{"<first key>"': it matches nested objects far less often.
        if self.boundary is None:
            match = re.match(rb'\[\s*\{\s*("[^"\\]{1,64}"\s*:)', bytes(self.buf[:256]))
            self.boundary = (
                re.compile(rb"\}\s*,\s*\{\s*" + re.escape(match.group(1))) if match else _OBJECT_END
            )
        return self.boundary

    def cut(self) -> list[Any] | None:
        """Decode and remove the longest cheap prefix batch, or None if none was found."""
        pattern = self._boundary()
        start = max(self.scan_from, len(self.buf) - _TAIL)
        # Search a copy: a live regex scan would pin the buffer and forbid resizing it.
        tail = bytes(self.buf[start:])
        ends = [start + m.start() for m in islice(pattern.finditer(tail), _MAX_TRIES)]
        for end in ends:
            comma = self.buf.index(b",", end)
            self.buf[comma] = ord("]")
            try:
                with memoryview(self.buf) as view, view[: comma + 1] as head:
                    batch = orjson.loads(head)
            except orjson.JSONDecodeError:
                self.buf[comma] = ord(",")
                continue
            del self.buf[1 : comma + 1]
            self.consumed += comma
            self.scan_from = 1
            return batch  # type: ignore[no-any-return]
        self.scan_from = len(self.buf)
        return None

    def rest(self) -> list[Any]:
        batch = _decode(self.buf, self.consumed)
        self.buf = bytearray()
        return batch  # type: ignore[no-any-return]


def iter_array_batches(chunks: Iterable[bytes], batch_bytes: int = 2 << 20) -> Iterator[Any]:
    """Yield the body as lists of elements, or, if the body is not an array, yield the
    decoded value once (``None`` for ``null`` or an empty body).

    Raises :class:`JSONStreamError` on a body that is not valid JSON; batches yielded
    before that point came from a prefix that was valid, but the caller must treat the
    whole body as failed.
    """
    it = iter(chunks)
    head = bytearray()
    for chunk in it:
        head += chunk
        if head.strip():
            break
    body = head.lstrip()
    leading = len(head) - len(body)
    if not body:
        yield None
        return
    if body[:1] != b"[":
        for chunk in it:
            body += chunk
        yield _decode(body, leading)
        return
    cutter = _ArrayCutter(batch_bytes)
    cutter.buf = body
    cutter.consumed = leading
    for chunk in it:
        cutter.buf += chunk
        if len(cutter.buf) >= cutter.batch_bytes:
            batch = cutter.cut()
            if batch:
                yield batch
    rest = cutter.rest()
    if not isinstance(rest, list):
        raise JSONStreamError("body starts as an array but does not decode to one", 0)
    if rest:
        yield rest
