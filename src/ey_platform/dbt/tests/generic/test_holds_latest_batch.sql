{#- The column holds every id of the latest ingestion date of `batch`, a raw batch table
    (id, _ingestion_date): a mart built from the latest batch has at least its records,
    so a mart that comes out empty or shrunken fails the build. A raw day that itself
    lost records moves the bar down with it (the batch's volume guard judges that).
    One failing row per id missing; `where` (a test config) narrows the model, for
    example to the current versions of a history. -#}
{% test holds_latest_batch(model, column_name, batch) %}
with batch_ids as (

    select distinct id
    from {{ batch }}
    where _ingestion_date = (select max(_ingestion_date) from {{ batch }})

),

built as (

    select {{ column_name }} as id from {{ model }}

)

select batch_ids.id as missing_id
from batch_ids
left join built on built.id = batch_ids.id
where built.id is null
{% endtest %}
