"""A FakeStore-compatible server: the public API's endpoints, shapes and quirks.

- ``GET /products``, ``/users``, ``/carts`` with ``limit`` and ``sort=desc``; carts also
  take ``startdate``/``enddate`` (``YYYY-MM-DD``, end exclusive) and ``/carts/user/{id}``.
- ``GET /{entity}/{id}`` answers 200 with ``null`` for an unknown id.
- ``GET /products/categories`` and ``/products/category/{name}``.
- ``POST``/``PUT``/``PATCH``/``DELETE`` echo what they were sent (with an id) and save
  nothing, as the public API does.
- ``POST /auth/login`` returns a token for a known username and password.

Extras for testing: a live mode in which carts appear, change and vanish, and fault
injection (:mod:`ey_platform.source.faults`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ey_platform.source.data import Catalog, LiveChanges, Table
from ey_platform.source.faults import FaultPlan, drift

log = logging.getLogger(__name__)
_JSON = "application/json; charset=utf-8"
_STREAM_GROUP = 4096  # records joined per chunk of a streamed answer


@dataclass
class ServerState:
    catalog: Catalog
    faults: FaultPlan
    live_rate: float = 0.0


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type=_JSON)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # the public API ignores a limit it cannot read


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


def _select(request: Request, table: Table, ids: list[int]) -> list[bytes]:
    if request.query_params.get("sort") == "desc":
        ids.reverse()
    limit = _int(request.query_params.get("limit"))
    if limit and limit > 0:
        ids = ids[:limit]
    return [table.rows[i] for i in ids]


async def _array(rows: list[bytes]) -> AsyncIterator[bytes]:
    yield b"["
    for start in range(0, len(rows), _STREAM_GROUP):
        chunk = b",".join(rows[start : start + _STREAM_GROUP])
        yield chunk if start == 0 else b"," + chunk
    yield b"]"


def _answer(request: Request, rows: list[bytes]) -> Response:
    fault = request.state.fault
    if fault == "drift":
        return _json([drift(orjson.loads(row)) for row in rows])
    if fault == "empty":
        return Response(b"[]", media_type=_JSON)
    if fault == "malformed":
        body = b"[" + b",".join(rows[:3])
        return Response(body[: max(1, len(body) // 2)] + b'{"id": ', media_type=_JSON)
    if len(rows) <= _STREAM_GROUP:
        return Response(b"[" + b",".join(rows) + b"]", media_type=_JSON)
    return StreamingResponse(_array(rows), media_type=_JSON)


def _state(request: Request) -> ServerState:
    return request.app.state.fakestore  # type: ignore[no-any-return]


def _entity_table(request: Request) -> Table:
    return _state(request).catalog.table(request.url.path.split("/")[1])


async def list_entity(request: Request) -> Response:
    table = _entity_table(request)
    ids = list(table.rows)
    if request.url.path == "/carts":
        start = _day(request.query_params.get("startdate"))
        end = _day(request.query_params.get("enddate"))
        if start or end:
            ids = [
                i
                for i in ids
                if (start is None or table.day[i] >= start) and (end is None or table.day[i] < end)
            ]
    return _answer(request, _select(request, table, ids))


async def get_one(request: Request) -> Response:
    row = _entity_table(request).rows.get(request.path_params["id"])
    if request.state.fault == "drift" and row is not None:
        return _json(drift(orjson.loads(row)))
    return Response(row or b"null", media_type=_JSON)


async def categories(request: Request) -> Response:
    return _json(list(dict.fromkeys(_state(request).catalog.products.category.values())))


async def in_category(request: Request) -> Response:
    table = _state(request).catalog.products
    name = request.path_params["name"]
    return _answer(
        request, _select(request, table, [i for i, c in table.category.items() if c == name])
    )


async def carts_of_user(request: Request) -> Response:
    table = _state(request).catalog.carts
    uid = request.path_params["id"]
    return _answer(
        request, _select(request, table, [i for i, u in table.owner.items() if u == uid])
    )


async def echo(request: Request) -> Response:
    """POST, PUT, PATCH and DELETE answer as if they worked and change nothing."""
    table = _entity_table(request)
    if request.method == "DELETE":
        return Response(table.rows.get(request.path_params["id"], b"null"), media_type=_JSON)
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        return _json({"status": "error", "message": "body is not valid JSON"}, 400)
    if not isinstance(body, dict):
        return _json({"status": "error", "message": "body must be a JSON object"}, 400)
    rid = request.path_params.get("id", table.next_id())
    return _json({"id": rid, **{k: v for k, v in body.items() if k != "id"}})


async def login(request: Request) -> Response:
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict) or not body.get("username") or not body.get("password"):
        return Response("username and password are not provided in JSON format", 400)
    for row in _state(request).catalog.users.rows.values():
        user = orjson.loads(row)
        if user["username"] == body["username"] and user["password"] == body["password"]:
            digest = hashlib.sha256(f"{user['id']}:{user['username']}".encode()).digest()
            token = base64.urlsafe_b64encode(digest).decode().rstrip("=")
            return _json({"token": token})
    return Response("username or password is incorrect", 401)


async def not_found(request: Request, exc: Exception) -> Response:
    return _json({"status": "error", "message": f"no route for {request.url.path}"}, 404)


class FaultMiddleware:
    """Draws a fault for every request and applies those that replace the answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: ServerState = scope["app"].state.fakestore
        plan = state.faults
        fault = plan.draw()
        scope.setdefault("state", {})["fault"] = fault
        if plan.latency:
            await asyncio.sleep(plan.latency)
        if fault == "hang":
            await _hang(receive, plan.hang_for)
            return
        if fault == "error":
            response: Response = _json({"status": "error", "message": "injected"}, 503)
        elif fault == "ratelimit":
            response = _json({"status": "error", "message": "too many requests"}, 429)
            response.headers["Retry-After"] = f"{plan.retry_after:g}"
        elif fault == "null":
            response = Response(b"null", media_type=_JSON)
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


async def _hang(receive: Any, seconds: float) -> None:
    """Answer nothing until the client goes away or ``seconds`` pass."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass


async def _live(state: ServerState) -> None:
    changes = LiveChanges(state.catalog)
    interval = 1.0 / state.live_rate
    while True:
        await asyncio.sleep(interval)
        log.debug("live change: %s", changes.step())


def create_app(
    catalog: Catalog | None = None, faults: FaultPlan | None = None, live_rate: float = 0.0
) -> Starlette:
    """The ASGI app. ``live_rate`` changes per second; 0 keeps the data still."""
    state = ServerState(catalog or Catalog(), faults or FaultPlan(), live_rate)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_live(state)) if live_rate > 0 else None
        yield
        if task:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    routes = [Route("/auth/login", login, methods=["POST"])]
    for entity in ("products", "users", "carts"):
        routes += [
            Route(f"/{entity}", list_entity, methods=["GET"]),
            Route(f"/{entity}", echo, methods=["POST"]),
            Route(f"/{entity}/{{id:int}}", get_one, methods=["GET"]),
            Route(f"/{entity}/{{id:int}}", echo, methods=["PUT", "PATCH", "DELETE"]),
        ]
    routes += [
        Route("/products/categories", categories, methods=["GET"]),
        Route("/products/category/{name}", in_category, methods=["GET"]),
        Route("/carts/user/{id:int}", carts_of_user, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found})
    app.state.fakestore = state
    app.add_middleware(FaultMiddleware)
    return app


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` on loopback in a background thread; yields its base URL."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port or free_port(host),
        log_level="warning",
        # uvicorn's own handlers would write text lines beside the platform's (JSON on
        # Google Cloud): its records go through the platform's logging instead.
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=1,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fakestore", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the FakeStore server could not start on {host}:{config.port}")
        threading.Event().wait(0.01)
    try:
        yield f"http://{host}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
