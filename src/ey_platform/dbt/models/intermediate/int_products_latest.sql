{{ latest_batch(ref('stg_products'), 'product_id') }}
