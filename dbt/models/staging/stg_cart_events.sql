with source as (

    select * from {{ source('bq_raw', 'carts_events') }}

),

renamed as (

    select
        event_id,
        event_type,
        event_type = 'cart_deleted' as is_deletion,
        cart_id,
        cart_version,
        cast({{ json_string('cart', 'userId') }} as {{ dbt.type_bigint() }}) as user_id,
        {{ to_utc_timestamp(json_string('cart', 'date')) }} as order_ts,
        {{ json_array_of('cart', 'products') }} as lines,
        content_hash,
        {{ as_utc('extracted_at') }} as extracted_at,
        {{ as_utc('published_at') }} as published_at,
        {{ as_utc('_loaded_at') }} as loaded_at
    from source

)

select * from renamed
where true
qualify row_number() over (partition by event_id order by loaded_at) = 1
