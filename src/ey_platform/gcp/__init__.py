"""Google Cloud clients, built in one place from settings, and the one translation of
Google API errors into the platform's errors. Imported only by the gcp backends: the
Google SDKs are the optional extra ``ey-platform[gcp]``.

Credentials are Application Default Credentials (a service account attached to the Cloud
Run job, or ``gcloud auth application-default login`` on a laptop). When an emulator
endpoint is set, the client talks to it with anonymous credentials instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from ey_platform.errors import ConfigError, PlatformError
from ey_platform.settings import Settings

if TYPE_CHECKING:
    import google.cloud.pubsub_v1 as pubsub_v1
    import google.cloud.storage as storage
    from google.cloud import bigquery

Client = TypeVar("Client")


def _require_sdk(
    module: str, why: str = "profile gcp", package: str = "'ey-platform[gcp]'"
) -> None:
    try:
        __import__(module)
    except ImportError:
        raise ConfigError(
            f"{why} needs {module}, which is missing: pip install {package}"
        ) from None


def project(settings: Settings) -> str:
    if not settings.gcp.project:
        raise ConfigError("EYP_GCP__PROJECT: required with profile gcp")
    return settings.gcp.project


def describe(exc: Exception) -> str:
    """A Google API error as one line."""
    text = getattr(exc, "message", None) or str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


@contextmanager
def api_errors(error: type[PlatformError], what: str) -> Iterator[None]:
    """Raise a Google API error inside the block as ``error`` naming ``what`` failed."""
    from google.api_core.exceptions import GoogleAPICallError

    try:
        yield
    except GoogleAPICallError as exc:
        raise error(f"{what}: {describe(exc)}") from None


def _connect(service: str, endpoint: str | None, build: Callable[..., Client]) -> Client:
    """Build a client: with Application Default Credentials, or anonymously against the
    emulator at ``endpoint``. Missing credentials are a configuration error, not a
    traceback."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.auth.exceptions import DefaultCredentialsError

    if endpoint is not None:
        return build(
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=endpoint),
        )
    try:
        return build()
    except DefaultCredentialsError:
        raise ConfigError(
            f"profile gcp: no Google Cloud credentials for {service}. Run "
            "`gcloud auth application-default login`, run as a service account, or set "
            f"EYP_GCP__{service.upper()}_ENDPOINT for an emulator"
        ) from None


def storage_client(settings: Settings) -> storage.Client:
    _require_sdk("google.cloud.storage")
    from google.cloud import storage

    client = partial(storage.Client, project=project(settings))
    return _connect("storage", settings.gcp.storage_endpoint, client)


def bigquery_client(settings: Settings) -> bigquery.Client:
    _require_sdk("google.cloud.bigquery")
    if settings.warehouse.bigquery.storage_read:
        _require_sdk(
            "google.cloud.bigquery_storage",
            settings.variable("warehouse", "bigquery", "storage_read") + "=true",
            "google-cloud-bigquery-storage",
        )
    from google.cloud import bigquery

    client = partial(
        bigquery.Client, project=project(settings), location=settings.warehouse.bigquery.location
    )
    return _connect("bigquery", settings.gcp.bigquery_endpoint, client)


def _pubsub_emulator(settings: Settings) -> None:
    # The Pub/Sub clients find an emulator through this variable alone (and then use
    # an insecure channel without credentials).
    if settings.gcp.pubsub_endpoint is not None:
        os.environ["PUBSUB_EMULATOR_HOST"] = settings.gcp.pubsub_endpoint


def publisher_client(settings: Settings) -> pubsub_v1.PublisherClient:
    _require_sdk("google.cloud.pubsub_v1")
    from google.cloud import pubsub_v1

    _pubsub_emulator(settings)
    options = pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    return _connect("pubsub", None, partial(pubsub_v1.PublisherClient, publisher_options=options))


def subscriber_client(settings: Settings) -> pubsub_v1.SubscriberClient:
    _require_sdk("google.cloud.pubsub_v1")
    from google.cloud import pubsub_v1

    _pubsub_emulator(settings)
    return _connect("pubsub", None, pubsub_v1.SubscriberClient)
