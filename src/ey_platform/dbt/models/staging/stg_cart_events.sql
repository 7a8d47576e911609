with source as (

    select *, {{ cart_struct('cart') }} as parsed
    from {{ source('bq_raw', 'carts_events') }}

),

renamed as (

    select
        event_id,
        event_type,
        event_type = 'cart_deleted' as is_deletion,
        cart_id,
        cart_version,
        parsed.userId as user_id,
        {{ to_utc_timestamp('parsed.date') }} as order_ts,
        parsed.products as lines,
        content_hash,
        {{ as_utc('extracted_at') }} as extracted_at,
        {{ as_utc('published_at') }} as published_at,
        {{ as_utc('_loaded_at') }} as loaded_at
    from source

)

select * from renamed
{{ one_row_per_event() }}
