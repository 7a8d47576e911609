{#- Every value of the column is >= min_value (nulls are the business of not_null). -#}
{% test at_least(model, column_name, min_value) %}
select {{ column_name }} from {{ model }} where {{ column_name }} < {{ min_value }}
{% endtest %}
