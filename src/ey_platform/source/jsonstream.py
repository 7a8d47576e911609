"""Decode a JSON array that arrives in chunks, batch by batch, and turn a batch into
JSONL without re-serializing it.

The public API answers a collection as one JSON array, with no paging; a million carts
is about 170 MB. Holding that as one Python list costs about 1.7 GB, so the body is cut
into batches of roughly ``batch_bytes`` while it streams in, and each batch is decoded
on its own. A cut is only made where the text before it decodes as a valid array, which
happens only between two top-level elements: a cut inside a string or a nested value
leaves the text unbalanced and fails to decode, and the next candidate is tried.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar

import orjson

T = TypeVar("T")
Decoder = Callable[[bytes], T]

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


class NotAnArray(ValueError):
    """The body is valid JSON but not an array; ``value`` is what it held (None for
    ``null`` or an empty body)."""

    def __init__(self, value: Any) -> None:
        super().__init__("not a JSON array")
        self.value = value


def _loads(data: bytes | bytearray, offset: int) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise JSONStreamError(f"{exc.msg} at byte {offset + exc.pos}", offset + exc.pos) from None


class _ArrayCutter:
    """Holds ``[`` followed by the not yet decoded elements, and cuts batches off it."""

    def __init__(self, buf: bytearray, offset: int, decode: Decoder[Any] | None) -> None:
        self.buf = buf
        self.decode = decode
        self.consumed = offset  # bytes of the body already decoded, for error offsets
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

    def cut(self) -> tuple[bool, Any]:
        """Decode and remove a batch ending near the end of the buffer, if one is found.
        Without a decoder the last candidate is taken unproven (speculative cut)."""
        start = max(self.scan_from, len(self.buf) - _TAIL)
        # Search a copy: a live regex scan would pin the buffer and forbid resizing it.
        tail = bytes(self.buf[start:])
        ends = [start + m.start() for m in islice(self._boundary().finditer(tail), _MAX_TRIES)]
        for end in ends:
            comma = self.buf.index(b",", end)
            candidate = bytes(self.buf[:comma]) + b"]"
            try:
                batch = self.decode(candidate) if self.decode else candidate
            except ValueError:
                continue  # not a top-level boundary
            del self.buf[1 : comma + 1]
            self.consumed += comma
            self.scan_from = 1
            return True, batch
        self.scan_from = len(self.buf)
        return False, None

    def rest(self) -> Any:
        data = bytes(self.buf)
        self.buf = bytearray()
        if self.decode is None:
            return data
        try:
            return self.decode(data)
        except ValueError:
            _loads(data, self.consumed)  # names the offset of the syntax error
            raise


def iter_array_batches(
    chunks: Iterable[bytes], batch_bytes: int = 2 << 20, decode: Decoder[T] = orjson.loads
) -> Iterator[T]:
    """Yield ``decode(text)`` for consecutive batches of the array's elements, each
    ``text`` being a JSON array of about ``batch_bytes``.

    ``decode`` must raise ``ValueError`` for text that is not valid JSON. Raises
    :class:`NotAnArray` for a body that is not an array and :class:`JSONStreamError`
    for one that is not valid JSON; batches yielded before that came from a valid
    prefix, but the caller must treat the whole body as failed.
    """
    it = iter(chunks)
    body, leading = _start(it)
    yield from _cut_all(it, _ArrayCutter(body, leading, decode), batch_bytes)


def iter_array_texts(chunks: Iterable[bytes], batch_bytes: int = 2 << 20) -> Iterator[bytes]:
    """Like :func:`iter_array_batches` without decoding: each text is cut where an element
    seems to end, unproven. Joining the texts back (``a[:-1] + b"," + b[1:]``) gives
    the original array, so a consumer that finds a text invalid can merge it with the
    next one and try again."""
    it = iter(chunks)
    body, leading = _start(it)
    yield from _cut_all(it, _ArrayCutter(body, leading, None), batch_bytes)


def merge_texts(first: bytes, second: bytes) -> bytes:
    """Undo a cut between two consecutive texts of :func:`iter_array_texts`."""
    return first[:-1] + b"," + second[1:]


def _start(it: Iterator[bytes]) -> tuple[bytearray, int]:
    """Read up to the first byte of the body; raise NotAnArray unless it opens an array."""
    head = bytearray()
    for chunk in it:
        head += chunk
        if head.strip():
            break
    body = head.lstrip()
    leading = len(head) - len(body)
    if body[:1] != b"[":
        for chunk in it:
            body += chunk
        raise NotAnArray(_loads(body, leading) if body.strip() else None)
    return body, leading


def _cut_all(it: Iterator[bytes], cutter: _ArrayCutter, batch_bytes: int) -> Iterator[Any]:
    for chunk in it:
        cutter.buf += chunk
        if len(cutter.buf) >= batch_bytes:
            found, batch = cutter.cut()
            if found:
                yield batch
    if not re.fullmatch(rb"\[\s*\]\s*", cutter.buf):
        yield cutter.rest()


def first_key(array: bytes) -> bytes | None:
    """The first key of the first element of a JSON array of objects, as its token."""
    match = re.match(rb'\[\s*\{\s*("[^"\\]{1,64}")\s*:', array[:256])
    return match.group(1) if match else None


def array_to_jsonl(array: bytes, count: int, required: frozenset[str]) -> bytes | None:
    """The ``count`` elements of a compact JSON array of objects as JSONL lines, byte for
    byte as received, or None when that cannot be proven exact.

    Let K be the first key of the first element, a field every element has (``required``),
    so the text holds the token ``"K"`` at least ``count`` times. If it holds it exactly
    ``count`` times, each is the top-level key of one element: no nested object has the
    key K and no string holds it. Then every ``},{"K":`` is a boundary between two
    elements, and if there are ``count - 1`` of them, they are all of the boundaries.
    """
    if count == 0:
        return b""
    key = first_key(array)
    if key is None or key[1:-1].decode() not in required:
        return None
    body = array.strip()[1:-1].strip()
    boundary = b"},{" + key + b":"
    if array.count(key) != count or body.count(boundary) != count - 1:
        return None
    return body.replace(boundary, b"}\n{" + key + b":") + b"\n"
