with source as (

    select *, {{ cart_struct('cart') }} as parsed
    from {{ source('bq_raw', 'cart_states') }}

),

renamed as (

    select
        {{ cart_event_columns('parsed') }},
        top_version
    from source

)

select * from renamed
