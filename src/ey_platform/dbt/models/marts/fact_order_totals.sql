{#- One row per order (a live cart in its latest state), for BI users who think in orders. -#}
select
    cart_id,
    user_key,
    order_ts,
    order_date,
    cast(count(*) as {{ dbt.type_bigint() }}) as line_count,
    cast(sum(quantity) as {{ dbt.type_bigint() }}) as item_count,
    cast(sum(line_amount) as {{ money_type() }}) as order_total
from {{ ref('fact_orders') }}
group by cart_id, user_key, order_ts, order_date
