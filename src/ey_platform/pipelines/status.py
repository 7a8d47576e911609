"""``ey-platform stream status``: what an operator wants to see at a glance. Only reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ey_platform.bus.base import Bus, BusStats, bus_stats
from ey_platform.errors import WarehouseError
from ey_platform.state.base import PollerState
from ey_platform.warehouse.base import Warehouse


def _count(value: int | None) -> str:
    return "n/a (see Cloud Monitoring)" if value is None else f"{value:,}"


def stream_status(
    bus: Bus | None, state: PollerState | None, warehouse: Warehouse
) -> dict[str, str]:
    """What an operator wants to see at a glance; ``None`` for a bus or a poller state
    that does not exist yet. Only reads."""
    facts: dict[str, str] = {}
    if bus is None:
        facts["bus"] = "none yet (nothing published)"
    else:
        stats = bus_stats(bus) or BusStats(None, None, None, None)  # None: it cannot count
        oldest = stats.oldest_unacked_seconds
        facts |= {
            "backlog (unacked)": _count(stats.backlog),
            "leased now": _count(stats.leased),
            "oldest unacked": "-" if oldest is None else f"{oldest:,.1f}s",
            "dead letters": _count(stats.dead_letters),
        }
    try:
        recent = warehouse.events_loaded_since(datetime.now(UTC) - timedelta(minutes=5))
        facts["throughput, last 5 min"] = f"{recent / 300:,.1f} events/s"
    except WarehouseError as exc:
        facts["throughput, last 5 min"] = f"n/a ({exc})"
    last = state.last_poll() if state is not None else None
    if last is None:
        facts["last poll"] = "none yet"
    else:
        when = datetime.fromtimestamp(last.started_at, UTC)
        facts["last poll"] = (
            f"{when:%Y-%m-%d %H:%M:%S}Z {last.status}: {last.fetched:,} carts, "
            f"+{last.created} ~{last.updated} -{last.deleted}"
            + (f" ({last.error})" if last.error else "")
        )
    return facts
