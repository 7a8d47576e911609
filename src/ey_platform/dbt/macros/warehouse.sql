{#- Every difference between DuckDB and BigQuery lives here, behind adapter.dispatch. -#}

{% macro json_string(column, path) -%}
  {{ return(adapter.dispatch('json_string', 'ey_data_platform')(column, path)) }}
{%- endmacro %}
{% macro default__json_string(column, path) -%}
  json_extract_string({{ column }}, '$.{{ path }}')
{%- endmacro %}
{% macro bigquery__json_string(column, path) -%}
  json_value({{ column }}, '$.{{ path }}')
{%- endmacro %}

{% macro json_array_of(column, path) -%}
  {{ return(adapter.dispatch('json_array_of', 'ey_data_platform')(column, path)) }}
{%- endmacro %}
{% macro default__json_array_of(column, path) -%}
  json_extract({{ column }}, '$.{{ path }}')
{%- endmacro %}
{% macro bigquery__json_array_of(column, path) -%}
  json_query({{ column }}, '$.{{ path }}')
{%- endmacro %}

{#- One row per line of each cart of `relation` (cart_id, user_id, order_ts, lines as
    cart_struct types them): cart_id, user_id, order_ts, line_number (1-based),
    product_id, quantity. DuckDB: select-list unnest of the typed list, 8 times faster
    than a lateral join over 3M lines. -#}
{% macro explode_cart_lines(relation) -%}
  {{ return(adapter.dispatch('explode_cart_lines', 'ey_data_platform')(relation)) }}
{%- endmacro %}
{% macro default__explode_cart_lines(relation) -%}
  select
      cart_id, user_id, order_ts,
      cast(line_number as bigint) as line_number,
      item.productId as product_id,
      item.quantity as quantity
  from (
      select cart_id, user_id, order_ts, unnest(lines) as item,
             generate_subscripts(lines, 1) as line_number
      from {{ relation }}
  ) as exploded
{%- endmacro %}
{% macro bigquery__explode_cart_lines(relation) -%}
  select
      carts.cart_id, carts.user_id, carts.order_ts,
      line_offset + 1 as line_number,
      cast(json_value(item, '$.productId') as int64) as product_id,
      cast(json_value(item, '$.quantity') as int64) as quantity
  from {{ relation }} as carts
  cross join unnest(json_query_array(carts.lines)) as item with offset as line_offset
{%- endmacro %}

{#- ISO-8601 text (2020-03-02T00:00:00.000Z) to a UTC timestamp. -#}
{% macro to_utc_timestamp(expression) -%}
  {{ return(adapter.dispatch('to_utc_timestamp', 'ey_data_platform')(expression)) }}
{%- endmacro %}
{% macro default__to_utc_timestamp(expression) -%}
  cast(cast({{ expression }} as timestamptz) at time zone 'UTC' as timestamp)
{%- endmacro %}
{% macro bigquery__to_utc_timestamp(expression) -%}
  timestamp({{ expression }})
{%- endmacro %}

{#- Partitioning of a mart by a date column, where the warehouse has it. -#}
{% macro partition_by_day(column) -%}
  {{ return(adapter.dispatch('partition_by_day', 'ey_data_platform')(column)) }}
{%- endmacro %}
{% macro default__partition_by_day(column) -%}
  {{ return(none) }}
{%- endmacro %}
{% macro bigquery__partition_by_day(column) -%}
  {{ return({'field': column, 'data_type': 'date', 'granularity': 'day'}) }}
{%- endmacro %}

{% macro money_type() -%}numeric(38, 9){%- endmacro %}

{#- A timestamp with time zone (snapshot times, load times) as a UTC timestamp. -#}
{% macro as_utc(expression) -%}
  {{ return(adapter.dispatch('as_utc', 'ey_data_platform')(expression)) }}
{%- endmacro %}
{% macro default__as_utc(expression) -%}
  cast(timezone('UTC', {{ expression }}) as timestamp)
{%- endmacro %}
{% macro bigquery__as_utc(expression) -%}
  cast({{ expression }} as timestamp)
{%- endmacro %}

{#- Clustering of a mart, where the warehouse has it. (Not named cluster_by: that is
    dbt-bigquery's own macro, which a project macro of the same name would replace.) -#}
{% macro clustering(columns) -%}
  {{ return(adapter.dispatch('clustering', 'ey_data_platform')(columns)) }}
{%- endmacro %}
{% macro default__clustering(columns) -%}
  {{ return(none) }}
{%- endmacro %}
{% macro bigquery__clustering(columns) -%}
  {{ return(columns) }}
{%- endmacro %}

{#- The fields of a cart event's JSON that staging needs, as a struct with userId
    (bigint), date (text) and products, the lines. DuckDB parses the JSON once, lines
    included, into a list of structs (productId, quantity); parsing the lines again
    later cost a sixth of fact_orders. BigQuery keeps them as a JSON array, which
    explode_cart_lines reads with json_query_array. -#}
{% macro cart_struct(column) -%}
  {{ return(adapter.dispatch('cart_struct', 'ey_data_platform')(column)) }}
{%- endmacro %}
{% macro default__cart_struct(column) -%}
  json_transform({{ column }}, '{"userId": "BIGINT", "date": "VARCHAR",
                                 "products": [{"productId": "BIGINT", "quantity": "BIGINT"}]}')
{%- endmacro %}
{% macro bigquery__cart_struct(column) -%}
  struct(
      cast(json_value({{ column }}, '$.userId') as int64) as userId,
      json_value({{ column }}, '$.date') as date,
      json_query({{ column }}, '$.products') as products
  )
{%- endmacro %}

{#- stg_cart_events keeps the first loaded row of each event_id. BigQuery: nothing
    enforces a key on bq_raw.carts_events (the consumer's MERGE keeps it unique, but
    anyone with write access can append), so staging deduplicates. DuckDB: event_id is
    the raw table's PRIMARY KEY, so no two rows can share it and the window, 40% of the
    model's cost at 1M events, would find nothing. Only for that table: elsewhere the
    DuckDB variant would drop a deduplication that is needed. -#}
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

{#- The snapshot's clock on DuckDB. dbt-duckdb's own is `now()::timestamp`, a wall
    clock in the session's time zone, while products_snapshot keeps its validity as
    instants (timestamptz, from each batch's extracted_at); dbt warns at every rebuild
    that the two differ. An instant on both sides. (A project macro of this name takes
    precedence over the adapter's for dbt's own dispatch.) -#}
{% macro duckdb__snapshot_get_time() -%}
  now()
{%- endmacro %}
