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

{#- A join that yields one row per element of a JSON array, as alias.element (JSON)
    and alias.position (1-based). -#}
{% macro unnest_json_array(array_expression, alias) -%}
  {{ return(adapter.dispatch('unnest_json_array', 'ey_data_platform')(array_expression, alias)) }}
{%- endmacro %}
{% macro default__unnest_json_array(array_expression, alias) -%}
  cross join unnest(cast({{ array_expression }} as json[])) with ordinality as {{ alias }}(element, position)
{%- endmacro %}
{% macro bigquery__unnest_json_array(array_expression, alias) -%}
  cross join unnest(array(
    select as struct element, offset + 1 as position
    from unnest(json_query_array({{ array_expression }})) as element with offset
  )) as {{ alias }}
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

{% macro cluster_by(columns) -%}
  {{ return(adapter.dispatch('cluster_by', 'ey_data_platform')(columns)) }}
{%- endmacro %}
{% macro default__cluster_by(columns) -%}
  {{ return(none) }}
{%- endmacro %}
{% macro bigquery__cluster_by(columns) -%}
  {{ return(columns) }}
{%- endmacro %}
