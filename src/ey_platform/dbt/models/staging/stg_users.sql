with source as (

    select * from {{ source('bq_raw', 'users') }}

),

renamed as (

    select
        cast({{ json_string('_raw', 'id') }} as {{ dbt.type_bigint() }}) as user_id,
        {{ json_string('_raw', 'username') }} as username,
        {{ json_string('_raw', 'email') }} as email,
        {{ json_string('_raw', 'name.firstname') }} as first_name,
        {{ json_string('_raw', 'name.lastname') }} as last_name,
        {{ json_string('_raw', 'phone') }} as phone,
        {{ json_string('_raw', 'address.city') }} as city,
        {{ json_string('_raw', 'address.street') }} as street,
        cast({{ json_string('_raw', 'address.number') }} as {{ dbt.type_bigint() }}) as street_number,
        {{ json_string('_raw', 'address.zipcode') }} as zipcode,
        cast({{ json_string('_raw', 'address.geolocation.lat') }} as numeric(10, 6)) as latitude,
        cast({{ json_string('_raw', 'address.geolocation.long') }} as numeric(10, 6)) as longitude,
        _ingestion_date as ingestion_date,
        _loaded_at as loaded_at
    from source

)

select * from renamed
