-- `tokenbook report --by context`: contexts active in [since, until), most expensive first, from
-- the exact per-context aggregate (v_context_costs = context_costs FINAL).
SELECT
    context_id,
    tenant_id,
    workflow_name,
    first_seen,
    last_seen,
    calls,
    tool_calls,
    retries,
    call_errors + tool_errors AS errors,
    input_tokens,
    output_tokens,
    cache_read_tokens,
    arrayStringConcat(models, ',') AS models,
    unpriced_calls,
    total_cost,
    currency
FROM v_context_costs
WHERE last_seen >= {since:DateTime64(6, 'UTC')}
    AND first_seen < {until:DateTime64(6, 'UTC')}
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
ORDER BY total_cost DESC NULLS LAST, context_id
LIMIT {limit:UInt32}
