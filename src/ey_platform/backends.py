"""The one place where the profile chooses the backends. Pipelines receive interfaces.

The Google backends import the Google SDKs (the optional extra ``ey-platform[gcp]``) only
when the gcp profile asks for them.
"""

from __future__ import annotations

from ey_platform.bus.base import Bus
from ey_platform.lake.base import Lake
from ey_platform.settings import Settings
from ey_platform.warehouse.base import Warehouse


def make_lake(settings: Settings) -> Lake:
    if settings.profile == "gcp":
        from ey_platform import gcp
        from ey_platform.lake.gcs import GcsLake

        return GcsLake(gcp.storage_client(settings), settings.lake.gcs.bucket)
    from ey_platform.lake.local import LocalLake

    return LocalLake(settings.lake_root)


def make_warehouse(settings: Settings, *, read_only: bool = False) -> Warehouse:
    wh = settings.warehouse
    if settings.profile == "gcp":
        from ey_platform import gcp
        from ey_platform.warehouse.bigquery import BigQueryWarehouse

        return BigQueryWarehouse(
            gcp.bigquery_client(settings),
            wh.raw_dataset,
            wh.analytics_dataset,
            build=wh.build_dataset,
            storage_read=wh.bigquery.storage_read,
        )
    from ey_platform.warehouse.duckdb import DuckDBWarehouse

    return DuckDBWarehouse(
        settings.duckdb_path,
        wh.raw_dataset,
        wh.analytics_dataset,
        wh.duckdb.lock_timeout,
        build=wh.build_dataset,
        serving=settings.serving_path,
        read_only=read_only,
    )


def make_bus(settings: Settings) -> Bus:
    bus = settings.bus
    if settings.profile == "gcp":
        from ey_platform import gcp
        from ey_platform.bus.pubsub import PubSubBus

        project = gcp.project(settings)
        return PubSubBus(
            gcp.publisher_client(settings),
            gcp.subscriber_client(settings),
            project,
            bus.topic,
            bus.subscription,
            bus.dead_letter_topic,
            ack_deadline=bus.ack_deadline,
            max_delivery_attempts=bus.max_delivery_attempts,
            exactly_once=bus.pubsub.exactly_once,
        )
    from ey_platform.bus.sqlite import SQLiteBus

    return SQLiteBus(
        settings.bus_path,
        bus.topic,
        bus.subscription,
        bus.dead_letter_topic,
        ack_deadline=bus.ack_deadline,
        max_delivery_attempts=bus.max_delivery_attempts,
        sync=bus.sqlite.sync,
    )


def open_bus_read_only(settings: Settings) -> Bus | None:
    """The bus as ``stream status`` reads it: nothing created, nothing written; None when
    there is none yet (embedded bus only: Pub/Sub is read through its API)."""
    if settings.profile == "gcp":
        return make_bus(settings)
    from ey_platform.bus.sqlite import SQLiteBus

    bus = settings.bus
    return SQLiteBus.open_read_only(
        settings.bus_path, bus.topic, bus.subscription, bus.dead_letter_topic
    )
