with source as (

    select * from {{ source('bq_raw', 'products') }}

),

renamed as (

    select
        cast({{ json_string('_raw', 'id') }} as {{ dbt.type_bigint() }}) as product_id,
        {{ json_string('_raw', 'title') }} as title,
        cast({{ json_string('_raw', 'price') }} as {{ money_type() }}) as price,
        {{ json_string('_raw', 'description') }} as description,
        {{ json_string('_raw', 'category') }} as category,
        {{ json_string('_raw', 'image') }} as image_url,
        cast({{ json_string('_raw', 'rating.rate') }} as numeric(4, 2)) as rating_rate,
        cast({{ json_string('_raw', 'rating.count') }} as {{ dbt.type_bigint() }}) as rating_count,
        _ingestion_date as ingestion_date,
        _extracted_at as extracted_at,
        _loaded_at as loaded_at
    from source

)

select * from renamed
