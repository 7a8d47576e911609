"""The local warehouse: one DuckDB file (:mod:`.warehouse`), its raw layer (:mod:`.ddl`),
the batch load (:mod:`.load`), the stream's sink (:mod:`.sink`), the publication of the
marts and the serving file (:mod:`.publish`) and the opening of the file
(:mod:`.connection`)."""

from ey_platform.warehouse.duckdb.connection import LOCK_CONFLICT, open_file
from ey_platform.warehouse.duckdb.warehouse import DuckDBWarehouse

__all__ = ["LOCK_CONFLICT", "DuckDBWarehouse", "open_file"]
