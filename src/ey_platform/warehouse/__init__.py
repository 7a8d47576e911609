"""The warehouse: raw tables in ``bq_raw``, marts in ``bq_analytics``."""
