{#- The model holds exactly the lines of the carts alive in `cart_states` (bq_raw's view
    of each cart's latest observed event; alive: not a deletion), a cart's lines being
    the `products` array of its `cart` JSON, read with the macros staging reads it with.
    One failing row per cart whose number of lines differs between the raw layer and
    the model, missing carts included: a mart that comes out empty, shrunken or grown
    fails the build. A model of lines counts its rows; a model of orders names its
    column of lines per order in `line_count`. -#}
{% test lines_of_live_carts(model, cart_states, line_count=none) %}
with live_carts as (

    select cart_id, parsed.userId as user_id, parsed.date as order_ts, parsed.products as lines
    from (
        select cart_id, event_type, {{ cart_struct('cart') }} as parsed
        from {{ cart_states }}
    ) as states
    where event_type != 'cart_deleted'

),

raw_lines as (

    {{ explode_cart_lines('live_carts') }}

),

expected as (

    select cart_id, count(*) as lines from raw_lines group by cart_id

),

built as (

    select cart_id, {{ 'sum(' ~ line_count ~ ')' if line_count else 'count(*)' }} as lines
    from {{ model }}
    group by cart_id

)

select
    coalesce(expected.cart_id, built.cart_id) as cart_id,
    expected.lines as raw_lines,
    built.lines as mart_lines
from expected
full outer join built on built.cart_id = expected.cart_id
where coalesce(expected.lines, 0) != coalesce(built.lines, 0)
{% endtest %}
