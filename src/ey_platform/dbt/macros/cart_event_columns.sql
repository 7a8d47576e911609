{#- A cart event's columns, renamed and cast, from a row of bq_raw.carts_events (or of
    bq_raw.cart_states, which has the same columns) with `parsed`, its cart_struct.
    stg_cart_events and stg_cart_states select them alike. -#}
{% macro cart_event_columns(parsed) -%}
        event_id,
        event_type,
        event_type = 'cart_deleted' as is_deletion,
        cart_id,
        cart_version,
        {{ parsed }}.userId as user_id,
        {{ to_utc_timestamp(parsed ~ '.date') }} as order_ts,
        {{ parsed }}.products as lines,
        content_hash,
        {{ as_utc('extracted_at') }} as extracted_at,
        {{ as_utc('published_at') }} as published_at,
        {{ as_utc('_loaded_at') }} as loaded_at
{%- endmacro %}
