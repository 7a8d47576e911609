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
