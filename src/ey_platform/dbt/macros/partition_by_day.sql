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
