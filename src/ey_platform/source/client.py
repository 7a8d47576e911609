"""A small, typed client for the FakeStore API (https://fakestoreapi.com/docs).

Every call has a timeout (the public API can hang without answering). Connection
errors, timeouts, 5xx and 429 are retried a bounded number of times with exponential
backoff and full jitter; a 429's ``Retry-After`` is honoured. After the last attempt one
:class:`SourceUnavailable` names the endpoint and the attempts. An answer of 200 with a
``null`` or empty body means "not found" for one record; for a collection it is a broken
answer (a collection is an array, empty at worst) and is retried like a 5xx.
Collections stream in batches, so a million carts are never held as one list. User
passwords are removed here, before any other part of the platform sees a record.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, Literal, TypeVar

import httpx
import orjson

from ey_platform.errors import MalformedResponse, SourceError, SourceUnavailable
from ey_platform.models import Entity
from ey_platform.settings import HttpSettings, Settings
from ey_platform.source.jsonstream import (
    Decoder,
    JSONStreamError,
    NotAnArray,
    iter_array_batches,
    iter_array_texts,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Sort = Literal["asc", "desc"]
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Query:
    """One GET of the API: a path and its query parameters."""

    path: str
    params: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params)
        return f"GET {self.path}" + (f"?{query}" if query else "")


class _Retry(Exception):
    """An attempt failed in a way worth another try, after ``delay`` seconds if given."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def scrub_user(record: Any) -> Any:
    """Remove the clear-text password of a user record (the platform keeps none)."""
    if isinstance(record, dict):
        record.pop("password", None)
    return record


# A "password" key with a string value in compact JSON, with the comma that separates it
# from its neighbour.
_PASSWORD_AFTER = re.compile(rb',"password":"[^"]*"')
_PASSWORD_FIRST = re.compile(rb'"password":"[^"]*",')


def scrub_passwords(text: bytes) -> bytes:
    """Remove every user's password from a JSON array text of users.

    Fast path: regular expressions on the bytes, only when the text holds no backslash,
    so that every quote delimits a string and a match is a real key and its value. If a
    ``"password"`` token is left (spaces around the colon, a value that is not a
    string, a string equal to "password"), or the text has a backslash, the text is
    decoded, scrubbed record by record and encoded again.
    """
    if b"\\" not in text:
        scrubbed = _PASSWORD_AFTER.sub(b"", text)
        if b'"password"' in scrubbed:  # the first key of an object
            scrubbed = _PASSWORD_FIRST.sub(b"", scrubbed)
        if b'"password"' not in scrubbed:
            return scrubbed
    records = orjson.loads(text)
    if not isinstance(records, list):
        return text
    return orjson.dumps([scrub_user(r) for r in records])


class FakeStoreClient:
    """Reads products, users and carts from a FakeStore-compatible API."""

    def __init__(
        self,
        base_url: str,
        http: HttpSettings | None = None,
        token: str | None = None,
        *,
        batch_bytes: int = 2 << 20,
        sleep: Any = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http or HttpSettings()
        self.batch_bytes = batch_bytes
        self._sleep = sleep
        headers = {"Accept": "application/json", "User-Agent": "ey-platform"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(
                self.http.read_timeout, connect=self.http.connect_timeout, pool=None
            ),
            follow_redirects=True,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> FakeStoreClient:
        token = settings.api_token.get_secret_value() if settings.api_token else None
        return cls(settings.api_url, settings.http, token)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> FakeStoreClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the endpoints -------------------------------------------------------------

    def iter_entity(
        self,
        entity: Entity,
        *,
        limit: int | None = None,
        sort: Sort | None = None,
        decode: Decoder[Any] = orjson.loads,
    ) -> Iterator[Any]:
        """Stream ``/products``, ``/users`` or ``/carts`` as batches: by default lists of
        raw records; with ``decode``, whatever it makes of each batch's JSON text."""
        query = Query(f"/{entity}", _params(limit=limit, sort=sort))
        return self.iter_collection(query, decode)

    def iter_carts(
        self,
        *,
        start: date | None = None,
        end: date | None = None,
        limit: int | None = None,
        sort: Sort | None = None,
    ) -> Iterator[list[Any]]:
        """Stream carts dated in ``[start, end)`` (the API's end date is exclusive)."""
        params = _params(
            startdate=start.isoformat() if start else None,
            enddate=end.isoformat() if end else None,
            limit=limit,
            sort=sort,
        )
        return self.iter_collection(Query("/carts", params))

    def collection(self, path: str, **params: Any) -> list[Any]:
        """A whole collection (``/products/category/jewelery``, ``/carts/user/1`` ...)."""
        batches: Iterator[list[Any]] = self.iter_collection(Query(path, _params(**params)))
        return [record for batch in batches for record in batch]

    def get(self, entity: Entity, record_id: int) -> dict[str, Any] | None:
        """One record by id, or ``None`` when the API answers 200 with null (not found)."""
        query = Query(f"/{entity}/{int(record_id)}")
        value = self._fetch_value(query)
        if value is not None and not isinstance(value, dict):
            raise MalformedResponse(f"{query.describe()}: expected an object, got {_kind(value)}")
        return scrub_user(value) if entity == "users" else value

    def categories(self) -> list[str]:
        query = Query("/products/categories")
        value = self._fetch_value(query)
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise MalformedResponse(f"{query.describe()}: expected a list of strings")
        return value

    # -- the mechanics -------------------------------------------------------------

    def iter_collection(self, query: Query, decode: Decoder[T] = orjson.loads) -> Iterator[T]:
        """Stream a JSON array as batches, each the ``decode`` of a JSON array text.

        A ``null`` or empty answer is retried, then raised as :class:`SourceUnavailable`.
        User passwords are removed from the text before ``decode`` sees it.
        """
        if query.path.startswith("/users"):
            decode = partial(_scrubbed, decode)
        with self._open(query, collection=True) as body, _reading(query):
            yield from iter_array_batches(body, batch_bytes=self.batch_bytes, decode=decode)

    def iter_texts(self, entity: Entity) -> Iterator[bytes]:
        """Stream ``/<entity>`` as JSON array texts cut where an element seems to end,
        unproven (see :func:`iter_array_texts`): for consumers that decode in other
        processes. User texts still hold passwords: pass each through
        :func:`prepare_text` before anything else sees it."""
        query = Query(f"/{entity}")
        with self._open(query, collection=True) as body, _reading(query):
            yield from iter_array_texts(body, batch_bytes=self.batch_bytes)

    def _fetch_value(self, query: Query) -> Any:
        with self._open(query) as chunks:
            try:
                body = b"".join(chunks)
            except httpx.HTTPError as exc:
                raise SourceError(
                    f"{query.describe()}: reading the body failed: {_why(exc)}"
                ) from None
        if not body.strip():
            return None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedResponse(
                f"{query.describe()}: body is not valid JSON: {exc.msg} at byte {exc.pos}"
            ) from None

    def _open(self, query: Query, *, collection: bool = False) -> _Opened:
        """Send the request, retrying as the module docstring says; the answer is 200
        (and, for a ``collection``, its body starts with something other than null)."""
        attempts = self.http.max_attempts
        last = ""
        for attempt in range(1, attempts + 1):
            try:
                response = self._attempt(query)
                return _Opened(response, _collection_body(response) if collection else None)
            except _Retry as retry:
                last = str(retry)
                if attempt == attempts:
                    break
                delay = self._delay(attempt, retry.delay, query)
                log.warning(
                    "%s failed (%s), attempt %d of %d, retrying in %.2fs",
                    query.describe(),
                    last,
                    attempt,
                    attempts,
                    delay,
                )
                self._sleep(delay)
        raise SourceUnavailable(
            f"{self.base_url}: {query.describe()} failed after {attempts} attempts; "
            f"last error: {last}"
        )

    def _attempt(self, query: Query) -> httpx.Response:
        request = self._client.build_request("GET", query.path, params=query.params)
        try:
            response = self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise _Retry(f"no answer in time ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Retry(f"connection error: {_why(exc)}") from None
        if response.status_code == 200:
            return response
        response.close()
        status = response.status_code
        if status in _RETRY_STATUS:
            delay = _retry_after(response.headers.get("Retry-After")) if status == 429 else None
            raise _Retry(f"HTTP {status}", delay)
        raise SourceError(f"{self.base_url}: {query.describe()} answered HTTP {status}")

    def _delay(self, attempt: int, retry_after: float | None, query: Query) -> float:
        if retry_after is not None:
            if retry_after > self.http.retry_after_max:
                raise SourceUnavailable(
                    f"{self.base_url}: {query.describe()} asked to retry after {retry_after:.0f}s, "
                    f"more than the allowed {self.http.retry_after_max:.0f}s"
                )
            return retry_after
        ceiling = min(self.http.backoff_max, self.http.backoff_base * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


@contextmanager
def _reading(query: Query) -> Iterator[None]:
    """Turn what can go wrong while a body streams in into one clear error."""
    try:
        yield
    except NotAnArray as shape:
        if shape.value is not None:
            raise MalformedResponse(
                f"{query.describe()}: expected a JSON array, got {_kind(shape.value)}"
            ) from None
    except JSONStreamError as exc:
        raise MalformedResponse(f"{query.describe()}: body is not valid JSON: {exc}") from None
    except httpx.HTTPError as exc:
        raise SourceError(
            f"{query.describe()}: connection failed while reading the body: {_why(exc)}"
        ) from None


def _scrubbed(decode: Decoder[T], text: bytes) -> T:
    return decode(scrub_passwords(text))


def prepare_text(entity: str, text: bytes) -> bytes:
    """What a text of :meth:`FakeStoreClient.iter_texts` may become before it is used:
    user passwords removed."""
    return scrub_passwords(text) if entity == "users" else text


def _collection_body(response: httpx.Response) -> Iterator[bytes]:
    """The body's chunks, once its first byte that is not blank shows that it is not
    ``null`` and not empty; otherwise a retry (the response is closed)."""
    chunks = response.iter_bytes()
    head = b""
    try:
        for chunk in chunks:
            head += chunk
            if head.strip():
                break
    except httpx.HTTPError as exc:
        response.close()
        raise _Retry(f"connection failed while reading the body: {_why(exc)}") from None
    start = head.lstrip()[:1]
    if not start or start == b"n":
        response.close()
        raise _Retry("HTTP 200 with " + ("a null body" if start else "an empty body"))
    return itertools.chain((head,), chunks)


class _Opened:
    """Context manager over a 200 answer: gives its body's chunks, closes the response."""

    def __init__(self, response: httpx.Response, body: Iterator[bytes] | None = None) -> None:
        self.response = response
        self.body = body

    def __enter__(self) -> Iterator[bytes]:
        return self.body if self.body is not None else self.response.iter_bytes()

    def __exit__(self, *exc_info: object) -> None:
        self.response.close()


def _params(**params: Any) -> tuple[tuple[str, str], ...]:
    return tuple((key, str(value)) for key, value in params.items() if value is not None)


_KINDS: dict[type, str] = {dict: "an object", list: "an array", str: "a string"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _why(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
