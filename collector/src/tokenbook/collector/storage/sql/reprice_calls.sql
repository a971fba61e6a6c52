-- `tokenbook reprice`: the current (deduplicated) rows of the calls to re-price.
SELECT *
FROM v_calls
WHERE timestamp >= {since:DateTime64(6, 'UTC')}
    AND timestamp < {until:DateTime64(6, 'UTC')}
    AND ({model:String} = '' OR model = {model:String})
    AND price_status IN ('priced', 'unpriced', 'cache_hit')
ORDER BY timestamp
