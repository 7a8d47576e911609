{#- stg_cart_events keeps the first loaded row of each event_id. BigQuery: nothing
    enforces a key on bq_raw.carts_events (the consumer's MERGE keeps it unique, but
    anyone with write access can append), so staging deduplicates. DuckDB: event_id is
    the raw table's PRIMARY KEY, so no two rows can share it and the window would find
    nothing. Only for that table: elsewhere the DuckDB variant would drop a
    deduplication that is needed. -#}
{% macro one_row_per_event() -%}
  {{ return(adapter.dispatch('one_row_per_event', 'ey_data_platform')()) }}
{%- endmacro %}

{% macro default__one_row_per_event() -%}
  where true
  qualify row_number() over (partition by event_id order by loaded_at) = 1
{%- endmacro %}

{% macro duckdb__one_row_per_event() -%}
  {#- unique by the primary key of bq_raw.carts_events -#}
{%- endmacro %}
