{#-
  One row per cart line, in the cart's latest state; deleted carts are left out. The
  latest state of each cart is the warehouse's bq_raw.cart_states (stg_cart_states).
  Materialized as a table, rebuilt on every run: a cart update or deletion can touch
  any past order date, and a rebuild is correct by construction. On BigQuery the table
  is partitioned by order_date and clustered, so BI queries prune by date.
-#}
{{ config(
    partition_by=partition_by_day('order_date'),
    cluster_by=clustering(['user_key', 'product_key']),
) }}

with live_carts as (

    select cart_id, user_id, order_ts, lines
    from {{ ref('stg_cart_states') }}
    where not is_deletion

),

lines as (

    {{ explode_cart_lines('live_carts') }}

),

priced as (

    select
        lines.*,
        products.product_key,
        products.price as unit_price
    from lines
    left join {{ ref('dim_products') }} as products
        on products.product_id = lines.product_id
        and lines.order_ts >= products.valid_from
        and lines.order_ts < products.valid_to

)

select
    priced.cart_id,
    priced.line_number,
    users.user_key,
    priced.product_key,
    priced.order_ts,
    cast(priced.order_ts as date) as order_date,
    priced.quantity,
    priced.unit_price,
    cast(priced.quantity * priced.unit_price as {{ money_type() }}) as line_amount
from priced
left join {{ ref('dim_users') }} as users
    on users.user_id = priced.user_id
