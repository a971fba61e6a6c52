-- Recompute context_costs for the touched contexts from the deduplicated ledger. The filter is the
-- cross product of the touched tenants and context IDs (index-friendly and faster than a tuple IN);
-- recomputing an untouched context is harmless. The new row replaces the previous one
-- (ReplacingMergeTree(refreshed_at)): re-running never adds.
INSERT INTO {{db}}.context_costs (
    tenant_id, context_id, first_seen, last_seen, workflow_name, workflow_id, user_id, project_id,
    feature, calls, unpriced_calls, call_errors, retries, tool_calls, tool_errors, input_tokens,
    output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, input_cost, output_cost,
    cache_read_cost, cache_write_cost, total_cost, currency, models, outcome, refreshed_at
)
SELECT
    tenant_id,
    context_id,
    min(ts) AS first_seen,
    max(ts) AS last_seen,
    argMinIf(workflow_name, ts, workflow_name != '') AS workflow_name,
    argMinIf(workflow_id, ts, workflow_id != '') AS workflow_id,
    argMinIf(user_id, ts, user_id != '') AS user_id,
    argMinIf(project_id, ts, project_id != '') AS project_id,
    argMinIf(feature, ts, feature != '') AS feature,
    countIf(is_call) AS calls,
    countIf(is_call AND price_status = 'unpriced') AS unpriced_calls,
    countIf(is_call AND status = 'error') AS call_errors,
    countIf(is_call AND attempt > 0) AS retries,
    countIf(kind = 'tool') AS tool_calls,
    countIf(kind = 'tool' AND status = 'error') AS tool_errors,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(input_cost) AS input_cost,
    sum(output_cost) AS output_cost,
    sum(cache_read_cost) AS cache_read_cost,
    sum(cache_write_cost) AS cache_write_cost,
    sum(total_cost) AS total_cost,
    anyIf(currency, is_call AND currency != '') AS currency,
    arraySort(groupUniqArrayIf(model, is_call AND model != '')) AS models,
    argMaxIf(outcome, ts, outcome != '') AS outcome,
    now64(6) AS refreshed_at
FROM
(
    SELECT
        tenant_id, context_id, timestamp AS ts, workflow_name, workflow_id, user_id, project_id,
        feature, toUInt8(price_status NOT IN ('duplicate_layer', 'wrapper')) AS is_call, price_status,
        status, attempt, '' AS kind, if(is_call, input_tokens, 0) AS input_tokens,
        if(is_call, output_tokens, 0) AS output_tokens, if(is_call, cache_read_tokens, 0) AS cache_read_tokens,
        if(is_call, cache_write_tokens, 0) AS cache_write_tokens,
        if(is_call, reasoning_tokens, 0) AS reasoning_tokens, if(is_call, input_cost, NULL) AS input_cost,
        if(is_call, output_cost, NULL) AS output_cost, if(is_call, cache_read_cost, NULL) AS cache_read_cost,
        if(is_call, cache_write_cost, NULL) AS cache_write_cost, if(is_call, total_cost, NULL) AS total_cost,
        currency, model, '' AS outcome
    FROM {{db}}.llm_calls FINAL
    WHERE tenant_id IN {tenants:Array(String)} AND context_id IN {contexts:Array(String)}
    UNION ALL
    SELECT
        tenant_id, context_id, timestamp AS ts, '', '', '', '', '', toUInt8(0), '', status,
        toUInt32(0), kind, toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0),
        CAST(NULL, 'Nullable(Decimal(18, 12))'), CAST(NULL, 'Nullable(Decimal(18, 12))'),
        CAST(NULL, 'Nullable(Decimal(18, 12))'), CAST(NULL, 'Nullable(Decimal(18, 12))'),
        CAST(NULL, 'Nullable(Decimal(18, 12))'), '', '', outcome
    FROM {{db}}.context_steps FINAL
    WHERE tenant_id IN {tenants:Array(String)} AND context_id IN {contexts:Array(String)}
)
GROUP BY tenant_id, context_id
