{#- The text at `path` ('name.firstname') of the JSON in `column`; NULL where absent. -#}
{% macro json_string(column, path) -%}
  {{ return(adapter.dispatch('json_string', 'ey_data_platform')(column, path)) }}
{%- endmacro %}

{% macro default__json_string(column, path) -%}
  json_extract_string({{ column }}, '$.{{ path }}')
{%- endmacro %}

{% macro bigquery__json_string(column, path) -%}
  json_value({{ column }}, '$.{{ path }}')
{%- endmacro %}
