{#- One row per line of each cart of `relation` (cart_id, user_id, order_ts, lines as
    cart_struct types them): cart_id, user_id, order_ts, line_number (1-based),
    product_id, quantity. DuckDB unnests the typed list in the select list, which is
    cheaper than a lateral join; BigQuery reads the JSON array with json_query_array. -#}
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
