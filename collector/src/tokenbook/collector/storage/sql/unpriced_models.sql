-- `tokenbook prices --unpriced`: models (and service tiers) seen in the ledger without a price, most
-- calls first. A call of a tier without a known price is unpriced, never priced at the standard rate.
SELECT
    provider,
    model,
    service_tier,
    count() AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    min(timestamp) AS first_seen,
    max(timestamp) AS last_seen,
    any(price_source) AS reason
FROM v_calls
WHERE price_status = 'unpriced'
    AND ({model:String} = '' OR model = {model:String})
    AND ({provider:String} = '' OR provider = {provider:String})
GROUP BY provider, model, service_tier
ORDER BY calls DESC, provider, model, service_tier
