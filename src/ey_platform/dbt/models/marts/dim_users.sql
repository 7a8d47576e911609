select
    {{ dbt.hash("cast(user_id as " ~ dbt.type_string() ~ ")") }} as user_key,
    user_id,
    username,
    email,
    first_name,
    last_name,
    phone,
    city,
    street,
    street_number,
    zipcode,
    latitude,
    longitude
from {{ ref('int_users_latest') }}
