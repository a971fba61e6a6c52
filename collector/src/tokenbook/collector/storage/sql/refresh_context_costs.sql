-- Recompute context_costs for the touched contexts from the deduplicated ledger. The filter is the
-- cross product of the touched tenants and context IDs (index-friendly and faster than a tuple IN);
-- recomputing an untouched context is harmless. The new row replaces the previous one
-- (ReplacingMergeTree(refreshed_at)): re-running never adds.
--
-- Tool loops (migration 100): `seq` holds the context's billed model calls and tool steps in time
-- order (a call before a tool step of the same instant), empty without a tool step (no loop: nothing to
-- compute); a call continues a loop when a tool step started since the previous call (`cont`); a loop
-- is a call followed by calls that continue it.
INSERT INTO {{db}}.context_costs (
    tenant_id, context_id, first_seen, last_seen, workflow_name, workflow_id, user_id, project_id,
    feature, calls, unpriced_calls, call_errors, retries, tool_calls, tool_errors, input_tokens,
    output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, input_cost, output_cost,
    cache_read_cost, cache_write_cost, total_cost, currency, models, outcome, tool_loops, loop_steps,
    loop_tokens, loop_cost, prompt_growth_per_step, refreshed_at
)
WITH
    if(tool_calls = 0, [], arraySort(steps_and_calls)) AS seq,
    arrayCumSum(arrayMap(x -> x.2, seq)) AS tools_so_far,
    arrayFilter((x, t) -> x.2 = 0, seq, tools_so_far) AS loop_calls,
    arrayFilter((t, x) -> x.2 = 0, tools_so_far, seq) AS tools_before,
    arrayMap(i -> i > 1 AND tools_before[i] > tools_before[i - 1], arrayEnumerate(loop_calls)) AS cont,
    arrayFilter(s -> length(s) > 1, arraySplit((x, c) -> NOT c, loop_calls, cont)) AS loops
SELECT
    tenant_id, context_id, first_seen, last_seen, workflow_name, workflow_id, user_id, project_id,
    feature, calls, unpriced_calls, call_errors, retries, tool_calls, tool_errors, input_tokens,
    output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, input_cost, output_cost,
    cache_read_cost, cache_write_cost, total_cost, currency, models, outcome,
    length(loops) AS tool_loops,
    arrayMax(arrayPushBack(arrayMap(s -> length(s), loops), 0)) AS loop_steps,
    arraySum(arrayMap((x, c) -> if(c, x.4, 0), loop_calls, cont)) AS loop_tokens,
    if(
        arrayExists((x, c) -> c AND x.5 IS NOT NULL, loop_calls, cont),
        arraySum(arrayMap((x, c) -> if(c, ifNull(x.5, 0), 0), loop_calls, cont)),
        NULL
    ) AS loop_cost,
    if(
        empty(loops),
        NULL,
        round(arrayMax(arrayMap(s -> (toInt64(s[-1].3) - toInt64(s[1].3)) / (length(s) - 1), loops)), 1)
    ) AS prompt_growth_per_step,
    now64(6) AS refreshed_at
FROM
(
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
    groupArrayIf(
        (ts, toUInt8(kind = 'tool'), step_input, step_tokens, step_cost),
        kind = 'tool' OR (is_call AND price_status != 'not_billable')
    ) AS steps_and_calls
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
        currency, model, '' AS outcome, input_tokens AS step_input,
        input_tokens + output_tokens AS step_tokens, total_cost AS step_cost
    FROM {{db}}.llm_calls FINAL
    WHERE tenant_id IN {tenants:Array(String)} AND context_id IN {contexts:Array(String)}
    UNION ALL
    SELECT
        tenant_id, context_id, timestamp AS ts, '', '', '', '', '', toUInt8(0), '', status,
        toUInt32(0), kind, toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0),
        CAST(NULL, 'Nullable(Decimal(18, 12))'), CAST(NULL, 'Nullable(Decimal(18, 12))'),
        CAST(NULL, 'Nullable(Decimal(18, 12))'), CAST(NULL, 'Nullable(Decimal(18, 12))'),
        CAST(NULL, 'Nullable(Decimal(18, 12))'), '', '', outcome, toUInt64(0), toUInt64(0),
        CAST(NULL, 'Nullable(Decimal(18, 12))')
    FROM {{db}}.context_steps FINAL
    WHERE tenant_id IN {tenants:Array(String)} AND context_id IN {contexts:Array(String)}
)
GROUP BY tenant_id, context_id
)
