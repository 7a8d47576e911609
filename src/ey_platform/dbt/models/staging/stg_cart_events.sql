with source as (

    select *, {{ cart_struct('cart') }} as parsed
    from {{ source('bq_raw', 'carts_events') }}

),

renamed as (

    select
        {{ cart_event_columns('parsed') }}
    from source

)

select * from renamed
{{ one_row_per_event() }}
