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
