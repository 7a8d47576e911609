"""The warehouse: raw tables in ``bq_raw``, marts in ``bq_analytics``.

:mod:`.base` is the interface, :mod:`.raw_schema` the raw layer (read from
``raw_schema.json``), :mod:`.reads` the named reads in SQL both backends run;
:mod:`.duckdb` and :mod:`.bigquery` are the backends.
"""
