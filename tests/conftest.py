"""Shared fixtures: a real FakeStore server on loopback and a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ey_platform.settings import HttpSettings
from ey_platform.source.client import FakeStoreClient
from ey_platform.source.data import Catalog
from ey_platform.source.faults import FaultPlan
from ey_platform.source.server import ServerState, create_app, serve_in_thread


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No EYP_ variable or .env of the developer leaks into a test."""
    for key in list(os.environ):
        if key.startswith("EYP_"):
            monkeypatch.delenv(key)
    # Google's credential lookup never probes the metadata server from a test: the only
    # addresses tests reach are on loopback.
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.chdir(tmp_path)
    return


@dataclass
class FakeStore:
    url: str
    state: ServerState

    def faults(self, spec: str) -> None:
        self.state.faults = FaultPlan.parse(spec)


@pytest.fixture
def fakestore() -> Iterator[FakeStore]:
    """The bundled server at the public API's default size, on a free loopback port."""
    app = create_app(Catalog())
    with serve_in_thread(app) as url:
        yield FakeStore(url, app.state.fakestore)


@dataclass
class Sleeps:
    calls: list[float]

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    """Records the client's back-off sleeps instead of sleeping."""
    return Sleeps([])


FAST_HTTP = HttpSettings(read_timeout=0.5, connect_timeout=0.5, max_attempts=4, backoff_base=0.1)


@pytest.fixture
def client(fakestore: FakeStore, sleeps: Sleeps) -> Iterator[FakeStoreClient]:
    with FakeStoreClient(fakestore.url, FAST_HTTP, sleep=sleeps) as c:
        yield c
