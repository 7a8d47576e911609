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
