{#- The type of every price and amount: exact, with nine decimals (BigQuery's NUMERIC). -#}
{% macro money_type() -%}numeric(38, 9){%- endmacro %}
