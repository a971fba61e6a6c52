-- Whole-ledger totals over [since, until), from the deduplicated ledger: the figure every report's
-- per-group totals must add up to exactly.
SELECT
    count() AS calls,
    countIf(price_status = 'unpriced') AS unpriced_calls,
    countIf(price_status = 'cache_hit') AS cache_hits,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(total_cost) AS total_cost
FROM v_calls
WHERE timestamp >= {since:DateTime64(6, 'UTC')}
    AND timestamp < {until:DateTime64(6, 'UTC')}
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
