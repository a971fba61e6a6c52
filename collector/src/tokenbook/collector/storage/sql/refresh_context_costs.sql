-- Recompute context_costs for the touched contexts from the deduplicated ledger. The filter is the
-- cross product of the touched tenants and context IDs (index-friendly and faster than a tuple IN);
-- recomputing an untouched context is harmless. The new row replaces the previous one
-- (ReplacingMergeTree(refreshed_at)): re-running never adds. The filter is a PREWHERE: it reads only
-- sorting-key columns, on which every version of a row agrees, so FINAL still sees every version of
-- the rows it keeps (and merges only those).
--
-- Tool calls: a tool step whose parent is a tool step of the same tool (the last word of its name, after
-- a space, a dot, a slash or a double underscore: `execute_tool get_weather` under OpenInference's
-- `weather.get_weather`) is another layer of that tool call, and counts as none; so does one that lies
-- within the tool step before it of the same parent and tool, under another name, and is shorter (a
-- sibling layer: the MCP SDK's `tools/call get_weather` beside OpenInference's
-- `mcp__weather__get_weather`, both children of the Claude Agent SDK's span). `by_key` holds each tool
-- step twice, sorted: as a possible parent, (span ID, tool, 0, ...) (`tool_parents`), and as a call,
-- (parent's span ID, tool, 1, start, minus its end, failed, name) (`tool_calls_by_parent`); split
-- where the key changes, a run that starts with a possible parent holds that step's layers, one that
-- starts with a call holds calls of their own (`own_calls`), in start order, the longest first. A
-- call lies within an earlier one of the same parent and tool when that one ends later, or as late
-- and started earlier: `own_keys` orders the calls so (end, then the earlier start), and
-- `contained_by` holds, for each call, the largest key of the calls before it in its (parent, tool)
-- run, by name (`maxMap` over the ranges of those runs, which the engine computes without
-- re-reading each prefix); a call is a sibling layer when a call of another name holds a larger key
-- (so parallel calls each with two layers count once each, whichever started first). Sorted, not
-- looked up per step: a lookup of each step in the context's array costs the square of its tool
-- steps (a runaway loop of 10,000 tool steps took 54 s a refresh, and 20,000 3 GiB).
--
-- Tool loops (migration 100): `seq` holds the context's billed model calls and tool steps in time
-- order (a call before a tool step of the same instant); `s` is `seq` from its first call on (a tool
-- step before it continues nothing). A call continues a loop when a tool step started since the
-- previous call, i.e. when the element just before it in `s` is a tool step (`after_tool`: only tool
-- steps lie between two calls); a loop is a call followed by calls that continue it (`loops`: the
-- input tokens of each loop's calls). Each statement costs the engine's analysis of every expression,
-- so the figures are read off these arrays with as few expressions as give the same result.
INSERT INTO {{db}}.context_costs (
    tenant_id, context_id, first_seen, last_seen, workflow_name, workflow_id, user_id, project_id,
    feature, calls, unpriced_calls, call_errors, retries, tool_calls, tool_errors, input_tokens,
    output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, input_cost, output_cost,
    cache_read_cost, cache_write_cost, total_cost, currency, models, outcome, tool_loops, loop_steps,
    loop_tokens, loop_cost, prompt_growth_per_step, refreshed_at
)
WITH
    arraySort(steps_and_calls) AS seq,
    arraySlice(seq, indexOf(seq.2, 0)) AS s,
    arrayPopBack(arrayPushFront(s.2, 0)) AS after_tool,
    arrayFilter((x, t) -> x.2 = 0, s, after_tool) AS loop_calls,
    arrayFilter((t, x) -> x.2 = 0, after_tool, s) AS cont,
    arrayFilter(l -> length(l) > 1, arraySplit((i, c) -> NOT c, loop_calls.3, cont)) AS loops,
    arraySort(arrayConcat(tool_parents, tool_calls_by_parent)) AS by_key,
    arrayFlatten(arrayFilter(
        run -> run[1].3 = 1,
        arraySplit(
            (e, p) -> (e.1, e.2) != (p.1, p.2), by_key, arrayPopBack(arrayPushFront(by_key, by_key[1]))
        )
    )) AS own_calls,
    arrayMap(
        (e, p, i) -> if(i = 1 OR (e.1, e.2) != (p.1, p.2), i, 0),
        own_calls, arrayPopBack(arrayPushFront(own_calls, own_calls[1])), arrayEnumerate(own_calls)
    ) AS run_starts,
    arrayMap(
        e -> toInt128(-e.5) * 4503599627370496 + (4503599627370495 - toUnixTimestamp64Micro(e.4)), own_calls
    ) AS own_keys,
    arrayReduceInRanges(
        'maxMap',
        arrayMap((g, i) -> (g, toUInt32(i - g)), arrayFill(g -> g != 0, run_starts), arrayEnumerate(own_calls)),
        arrayMap(e -> [e.7], own_calls),
        arrayMap(k -> [k], own_keys)
    ) AS contained_by,
    arrayFilter(
        (e, k, c) -> NOT arrayExists((name, key) -> name != e.7 AND key > k, c.1, c.2),
        own_calls, own_keys, contained_by
    ) AS tool_calls_kept
SELECT
    tenant_id, context_id, first_seen, last_seen, workflow_name, workflow_id, user_id, project_id,
    feature, calls, unpriced_calls, call_errors, retries,
    length(tool_calls_kept) AS tool_calls,
    arraySum(tool_calls_kept.6) AS tool_errors,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, input_cost,
    output_cost, cache_read_cost, cache_write_cost, total_cost, currency, models, outcome,
    length(loops) AS tool_loops,
    arrayMax(l -> length(l), loops) AS loop_steps,
    arrayReduce('sumIf', loop_calls.4, cont) AS loop_tokens,
    arrayReduce('sumIf', loop_calls.5, cont) AS loop_cost,
    if(
        empty(loops),
        NULL,
        round(arrayMax(l -> (toInt64(l[-1]) - toInt64(l[1])) / (length(l) - 1), loops), 1)
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
    groupArrayIf((span_id, tool, 0, ts, toInt64(0), toUInt8(0), ''), kind = 'tool') AS tool_parents,
    groupArrayIf(
        (
            parent_span_id, tool, 1, ts, -(toUnixTimestamp64Micro(ts) + toInt64(step_ms * 1000)),
            toUInt8(status = 'error'), step_name
        ),
        kind = 'tool'
    ) AS tool_calls_by_parent,
    sumIf(input_tokens, is_call) AS input_tokens,
    sumIf(output_tokens, is_call) AS output_tokens,
    sumIf(cache_read_tokens, is_call) AS cache_read_tokens,
    sumIf(cache_write_tokens, is_call) AS cache_write_tokens,
    sumIf(reasoning_tokens, is_call) AS reasoning_tokens,
    sumIf(input_cost, is_call) AS input_cost,
    sumIf(output_cost, is_call) AS output_cost,
    sumIf(cache_read_cost, is_call) AS cache_read_cost,
    sumIf(cache_write_cost, is_call) AS cache_write_cost,
    sumIf(total_cost, is_call) AS total_cost,
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
        status, attempt, '' AS kind, input_tokens, output_tokens, cache_read_tokens,
        cache_write_tokens, reasoning_tokens, input_cost, output_cost, cache_read_cost,
        cache_write_cost, total_cost, currency, model, '' AS outcome, input_tokens AS step_input,
        input_tokens + output_tokens AS step_tokens, total_cost AS step_cost, '' AS span_id,
        '' AS parent_span_id, '' AS tool, '' AS step_name, 0. AS step_ms
    FROM {{db}}.llm_calls FINAL
    PREWHERE tenant_id IN {tenants:Array(String)} AND context_id IN {contexts:Array(String)}
    UNION ALL
    SELECT  -- a step: the calls' columns empty (the union takes their types)
        tenant_id, context_id, timestamp AS ts, '', '', '', '', '', 0, '', status, 0, kind, 0, 0, 0, 0,
        0, NULL, NULL, NULL, NULL, NULL, '', '', outcome, 0, 0, NULL, span_id, parent_span_id,
        if(kind = 'tool', splitByRegexp('[ ./]|__', name)[-1], ''), name, duration_ms
    FROM {{db}}.context_steps FINAL
    PREWHERE tenant_id IN {tenants:Array(String)} AND context_id IN {contexts:Array(String)}
)
GROUP BY tenant_id, context_id
)
