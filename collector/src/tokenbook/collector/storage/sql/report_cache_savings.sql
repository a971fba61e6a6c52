-- Cache savings per tenant and model over the UTC days of [since, until], from v_cache_savings (what
-- prompt-cache reads would have cost at each call's own input rate, minus what they cost; and
-- responses served from a response cache).
SELECT
    tenant_id,
    provider,
    model,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(paid_for_cached_input) AS paid_for_cached_input,
    sum(saved_by_prompt_cache) AS saved_by_prompt_cache,
    sum(response_cache_hits) AS response_cache_hits,
    currency
FROM v_cache_savings
WHERE day >= toDate({since:DateTime64(6, 'UTC')})
    AND day <= toDate({until:DateTime64(6, 'UTC')})
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
GROUP BY tenant_id, provider, model, currency
ORDER BY saved_by_prompt_cache DESC, tenant_id, model
