-- `tokenbook reconcile` and the drift alerts: the drift of the days [since, until) for one tenant scope
-- ('' = the whole organization), of one provider ('' = every provider), in a stable order.
SELECT
    tenant_id, day, provider, model, token_type,
    provider_tokens, ledger_tokens, token_drift,
    provider_cost, ledger_cost, cost_drift,
    provider_requests, ledger_calls, ledger_unpriced_calls, ledger_reasoning_tokens,
    cause
FROM {{db}}.v_reconcile_drift
WHERE day >= {since:Date} AND day < {until:Date}
    AND tenant_id = {tenant:String}
    AND ({provider:String} = '' OR provider = {provider:String})
ORDER BY day, provider, model = '', model, indexOf(['input', 'cache_read', 'cache_write', 'output', 'other'], token_type)
