-- Cache savings over [since, until): what prompt-cache reads would have cost at the call's own
-- input rate (input_cost / uncached input tokens, so tiers are respected), minus what they cost;
-- and responses served from a response cache (price_status = 'cache_hit', 0 USD, no model call).
SELECT
    tenant_id,
    provider,
    model,
    sum(cache_read_tokens) AS cached_input_tokens,
    sum(cache_read_cost) AS paid_for_cached_input,
    sumIf(
        cache_read_tokens * (input_cost / (input_tokens - cache_read_tokens - cache_write_tokens))
            - cache_read_cost,
        price_status = 'priced' AND input_tokens > cache_read_tokens + cache_write_tokens
    ) AS saved_by_prompt_cache,
    countIf(price_status = 'cache_hit') AS response_cache_hits,
    currency
FROM v_calls
WHERE timestamp >= {since:DateTime64(6, 'UTC')}
    AND timestamp < {until:DateTime64(6, 'UTC')}
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
    AND (cache_read_tokens > 0 OR price_status = 'cache_hit')
GROUP BY tenant_id, provider, model, currency
ORDER BY saved_by_prompt_cache DESC, tenant_id, model
