"""The production warehouse on BigQuery (:mod:`.warehouse`), its raw layer (:mod:`.ddl`),
the batch load (:mod:`.load`), the stream's sink (:mod:`.sink`) and the values written
into its SQL (:mod:`.literals`). The Google SDK is imported only where it is used."""

from ey_platform.warehouse.bigquery.warehouse import BigQueryWarehouse

__all__ = ["BigQueryWarehouse"]
