"""Google Cloud clients, built in one place from settings. Imported only by the gcp
backends: the Google SDKs are the optional extra ``ey-platform[gcp]``.

Credentials are Application Default Credentials (a service account attached to the Cloud
Run job, or ``gcloud auth application-default login`` on a laptop). When an emulator
endpoint is set, the client talks to it with anonymous credentials instead.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ey_platform.errors import ConfigError
from ey_platform.settings import Settings

if TYPE_CHECKING:
    import google.cloud.pubsub_v1 as pubsub_v1
    import google.cloud.storage as storage
    from google.cloud import bigquery


def _require_sdk(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise ConfigError(
            f"profile gcp needs the Google Cloud SDKs ({module} is missing): "
            "pip install 'ey-platform[gcp]'"
        ) from None


def project(settings: Settings) -> str:
    if not settings.gcp.project:
        raise ConfigError("EYP_GCP__PROJECT: required with profile gcp")
    return settings.gcp.project


def storage_client(settings: Settings) -> storage.Client:
    _require_sdk("google.cloud.storage")
    import google.cloud.storage as storage
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    endpoint = settings.gcp.storage_endpoint
    if endpoint is None:
        return storage.Client(project=project(settings))
    return storage.Client(
        project=project(settings),
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=endpoint),
    )


def bigquery_client(settings: Settings) -> bigquery.Client:
    _require_sdk("google.cloud.bigquery")
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    location = settings.warehouse.bigquery_location
    endpoint = settings.gcp.bigquery_endpoint
    if endpoint is None:
        return bigquery.Client(project=project(settings), location=location)
    return bigquery.Client(
        project=project(settings),
        location=location,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=endpoint),
    )


def _pubsub_emulator(settings: Settings) -> None:
    # The Pub/Sub clients find an emulator through this variable alone (and then use
    # an insecure channel without credentials).
    if settings.gcp.pubsub_endpoint is not None:
        os.environ["PUBSUB_EMULATOR_HOST"] = settings.gcp.pubsub_endpoint


def publisher_client(settings: Settings) -> pubsub_v1.PublisherClient:
    _require_sdk("google.cloud.pubsub_v1")
    import google.cloud.pubsub_v1 as pubsub_v1

    _pubsub_emulator(settings)
    return pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )


def subscriber_client(settings: Settings) -> pubsub_v1.SubscriberClient:
    _require_sdk("google.cloud.pubsub_v1")
    import google.cloud.pubsub_v1 as pubsub_v1

    _pubsub_emulator(settings)
    return pubsub_v1.SubscriberClient()
