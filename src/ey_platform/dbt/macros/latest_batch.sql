{#- The rows of a staged batch entity (`relation`, with ingestion_date and loaded_at)
    that the latest ingestion date holds, one per `key`: the one loaded last. A load
    replaces its whole day, so a key twice in a day is the source answering a record
    twice. -#}
{% macro latest_batch(relation, key) -%}
  select * from {{ relation }}
  where ingestion_date = (select max(ingestion_date) from {{ relation }})
  qualify row_number() over (partition by {{ key }} order by loaded_at desc) = 1
{%- endmacro %}
