"""The one place where the profile chooses the backends. Pipelines receive interfaces."""

from __future__ import annotations

from ey_platform.bus.base import Bus
from ey_platform.errors import ConfigError
from ey_platform.lake.base import Lake
from ey_platform.settings import Settings
from ey_platform.warehouse.base import Warehouse


def _not_built(part: str) -> ConfigError:
    return ConfigError(
        f"profile gcp: the {part} backend is not part of this build yet; use EYP_PROFILE=local"
    )


def make_lake(settings: Settings) -> Lake:
    if settings.profile == "gcp":
        raise _not_built("Cloud Storage lake")
    from ey_platform.lake.local import LocalLake

    return LocalLake(settings.lake_root)


def make_warehouse(settings: Settings) -> Warehouse:
    if settings.profile == "gcp":
        raise _not_built("BigQuery warehouse")
    from ey_platform.warehouse.duckdb import DuckDBWarehouse

    wh = settings.warehouse
    return DuckDBWarehouse(
        settings.duckdb_path, wh.raw_dataset, wh.analytics_dataset, wh.lock_timeout
    )


def make_bus(settings: Settings) -> Bus:
    if settings.profile == "gcp":
        raise _not_built("Pub/Sub bus")
    from ey_platform.bus.sqlite import SQLiteBus

    bus = settings.bus
    return SQLiteBus(
        settings.bus_path,
        bus.topic,
        bus.subscription,
        bus.dead_letter_topic,
        ack_deadline=bus.ack_deadline,
        max_delivery_attempts=bus.max_delivery_attempts,
        sync=bus.sync,
    )
