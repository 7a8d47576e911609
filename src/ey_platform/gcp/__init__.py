"""Google Cloud clients, built in one place from settings, and the one translation of
Google API errors into the platform's errors. Imported only by the gcp backends: the
Google SDKs are the optional extra ``ey-platform[gcp]``.

Credentials are Application Default Credentials (a service account attached to the Cloud
Run job, or ``gcloud auth application-default login`` on a laptop). When an emulator
endpoint is set, the client talks to it with anonymous credentials instead.

Every BigQuery job carries the labels ``app``, ``env`` and ``job`` (what it cost, by
deployment and job, in the billing export and ``INFORMATION_SCHEMA.JOBS``), and every
query job a ``maximum_bytes_billed``: a query that would bill more fails instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from ey_platform.errors import ConfigError, PlatformError
from ey_platform.ops.context import current_job
from ey_platform.settings import Settings

if TYPE_CHECKING:
    import google.cloud.pubsub_v1 as pubsub_v1
    import google.cloud.storage as storage
    from google.cloud import bigquery

Client = TypeVar("Client")
JobConfig = TypeVar("JobConfig", "bigquery.QueryJobConfig", "bigquery.LoadJobConfig")

APP_LABEL = "ey-platform"
NO_JOB = "adhoc"
"""The ``job`` label of a BigQuery job started outside any job of the CLI."""
_NOT_IN_LABEL = re.compile(r"[^a-z0-9_-]")


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

    labels = {"app": APP_LABEL, "env": label_value(settings.environment), "job": NO_JOB}
    client = partial(
        bigquery.Client,
        project=project(settings),
        location=settings.warehouse.bigquery.location,
        default_query_job_config=bigquery.QueryJobConfig(
            labels=labels,
            maximum_bytes_billed=settings.warehouse.bigquery.maximum_bytes_billed,
        ),
        default_load_job_config=bigquery.LoadJobConfig(labels=labels),
    )
    return _connect("bigquery", settings.gcp.bigquery_endpoint, client)


def label_value(text: str) -> str:
    """``text`` as a BigQuery label value: lowercase letters, digits, ``_`` and ``-``,
    at most 63 characters."""
    return _NOT_IN_LABEL.sub("_", text.strip().lower())[:63]


def with_job_label(client: bigquery.Client, config: JobConfig) -> JobConfig:
    """``config`` with the client's default labels and ``job``, the job running now.

    The client fills a job's unset fields from its default config, but ``labels`` as a
    whole: a config with labels of its own would lose ``app`` and ``env``. So they are
    merged here, per job, as one client serves every job of ``up``."""
    from google.cloud import bigquery

    default: bigquery.QueryJobConfig | bigquery.LoadJobConfig | None
    if isinstance(config, bigquery.QueryJobConfig):
        default = client.default_query_job_config
    else:
        default = client.default_load_job_config
    labels = dict(default.labels) if default is not None else {}
    config.labels = {**labels, "job": label_value(current_job() or NO_JOB)}
    return config


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
