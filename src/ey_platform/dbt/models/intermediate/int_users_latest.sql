{{ latest_batch(ref('stg_users'), 'user_id') }}
