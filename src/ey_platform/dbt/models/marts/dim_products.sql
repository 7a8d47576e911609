{#-
  One row per product version, from the snapshot. The first version of a product is
  valid from 1900-01-01: orders dated before the first snapshot (the 2020 carts of the
  public API, any backfill) take the earliest known version.
-#}
with versions as (

    select * from {{ ref('products_snapshot') }}

),

numbered as (

    select
        *,
        row_number() over (partition by product_id order by dbt_valid_from) as version_number
    from versions

)

select
    {{ dbt.hash(dbt.concat(["cast(product_id as " ~ dbt.type_string() ~ ")", "'#'",
                            "cast(version_number as " ~ dbt.type_string() ~ ")"])) }} as product_key,
    product_id,
    version_number,
    title,
    category,
    description,
    image_url,
    price,
    rating_rate,
    rating_count,
    case
        when version_number = 1 then cast('1900-01-01 00:00:00' as timestamp)
        else {{ as_utc('dbt_valid_from') }}
    end as valid_from,
    coalesce({{ as_utc('dbt_valid_to') }}, cast('9999-12-31 00:00:00' as timestamp)) as valid_to,
    dbt_valid_to is null as is_current
from numbered
