{#- The fields of a cart event's JSON that staging needs, as a struct with userId
    (bigint), date (text) and products, the lines. DuckDB parses the JSON once, lines
    included, into a list of structs (productId, quantity), so that explode_cart_lines
    does not parse it again. BigQuery keeps the lines as a JSON array, which
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
