{#- The snapshot's clock on DuckDB. dbt-duckdb's own is `now()::timestamp`, a wall
    clock in the session's time zone, while products_snapshot keeps its validity as
    instants (timestamptz, from each batch's extracted_at); dbt warns at every rebuild
    that the two differ. An instant on both sides. (A project macro of this name takes
    precedence over the adapter's for dbt's own dispatch.) -#}
{% macro duckdb__snapshot_get_time() -%}
  now()
{%- endmacro %}
