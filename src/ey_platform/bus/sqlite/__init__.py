"""The embedded bus: one SQLite file in WAL mode, shared by any number of processes.

- :mod:`.bus`: :class:`SQLiteBus`, the :class:`~ey_platform.bus.base.Bus` (each call one
  transaction), with every optional ability (setup, stats, inspection).
- :mod:`.connection`: the file, one connection per thread, write transactions, and the
  one :class:`~ey_platform.errors.BusError` that names the file, what is wrong with it
  and what to do.
- :mod:`.schema`: the tables, the format version, the subscriptions.
- :mod:`.segments`: how messages are stored (segments, and a cursor per subscription).
- :mod:`.leasing`: what a pull leases, what an ack or a nack does, dead-lettering.
- :mod:`.inspection`: the reads that change nothing (stats, dead letters).
  :meth:`SQLiteBus.open_read_only` opens a bus for ``stream status`` that only reads:
  it never creates, changes or writes the file.
"""

from ey_platform.bus.sqlite.bus import SQLiteBus
from ey_platform.bus.sqlite.schema import FORMAT_VERSION

__all__ = ["FORMAT_VERSION", "SQLiteBus"]
