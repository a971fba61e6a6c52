-- Latency next to cost, tool loops per context, and the policy path (docs/reference/schema.md).
--
-- llm_calls: time_to_first_token_ms (span start to the first token or chunk, from the span's
-- time-to-first-token attribute or its first first-token event) and output_tokens_per_second (the
-- decode rate of a streamed answer: output tokens over the time after the first token), both NULL when
-- unknown, never 0 (genai/latency.py); policy_path, the guard or route a call went through (the
-- attribute named by attribution.policy_path_key), '' when none.
ALTER TABLE {{table:llm_calls}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS time_to_first_token_ms Nullable(Float64),
    ADD COLUMN IF NOT EXISTS output_tokens_per_second Nullable(Float64),
    ADD COLUMN IF NOT EXISTS policy_path LowCardinality(String)
;
ALTER TABLE {{db}}.llm_calls {{on_cluster}}
    ADD COLUMN IF NOT EXISTS time_to_first_token_ms Nullable(Float64),
    ADD COLUMN IF NOT EXISTS output_tokens_per_second Nullable(Float64),
    ADD COLUMN IF NOT EXISTS policy_path LowCardinality(String)
;
-- context_costs: the context's tool loops, recomputed with the rest of the row (refresh_context_costs.sql).
-- Its billed model calls in time order; a call *continues* a loop when a tool step of the context
-- started since the previous call. A loop is a call and the calls that continue it. tool_loops: how
-- many; loop_steps: the model calls of the longest (0: none); loop_tokens / loop_cost: the input +
-- output tokens and the cost of the calls after the first of each loop (cost NULL when none of them
-- was priced); prompt_growth_per_step: the largest average growth of the input tokens per step over
-- the loops, to 0.1 token (NULL: no loop). Rows written before this migration read 0 / NULL until their context is
-- recomputed (any new call or step of it).
ALTER TABLE {{table:context_costs}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS tool_loops UInt32,
    ADD COLUMN IF NOT EXISTS loop_steps UInt32,
    ADD COLUMN IF NOT EXISTS loop_tokens UInt64,
    ADD COLUMN IF NOT EXISTS loop_cost Nullable(Decimal(38, 12)),
    ADD COLUMN IF NOT EXISTS prompt_growth_per_step Nullable(Float64)
;
ALTER TABLE {{db}}.context_costs {{on_cluster}}
    ADD COLUMN IF NOT EXISTS tool_loops UInt32,
    ADD COLUMN IF NOT EXISTS loop_steps UInt32,
    ADD COLUMN IF NOT EXISTS loop_tokens UInt64,
    ADD COLUMN IF NOT EXISTS loop_cost Nullable(Decimal(38, 12)),
    ADD COLUMN IF NOT EXISTS prompt_growth_per_step Nullable(Float64)
;
-- The views that list a table's columns as of their creation: made again with the new ones.
CREATE OR REPLACE VIEW {{db}}.v_calls {{on_cluster}} AS
SELECT * FROM {{db}}.llm_calls FINAL
WHERE price_status NOT IN ('duplicate_layer', 'wrapper')
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_call_candidates {{on_cluster}} AS
SELECT * FROM {{db}}.llm_calls FINAL
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_context_costs {{on_cluster}} AS
SELECT * FROM {{db}}.context_costs FINAL
;
-- Latency next to cost, one row per billed model call (model calls only: wrappers and tools have no
-- first token). decode_ms is the time after the first token; NULL like the time to first token.
CREATE OR REPLACE VIEW {{db}}.v_call_latency {{on_cluster}} AS
SELECT
    timestamp,
    tenant_id,
    context_id,
    trace_id,
    span_id,
    provider,
    model,
    feature,
    policy_path,
    status,
    duration_ms,
    time_to_first_token_ms,
    duration_ms - time_to_first_token_ms AS decode_ms,
    output_tokens,
    output_tokens_per_second,
    input_tokens,
    total_cost,
    currency
FROM {{db}}.v_calls
WHERE kind IN ('model', '') AND price_status != 'not_billable'
;
-- Latency and cost per model and day: median and 95th percentile of the duration and of the time to
-- first token (over the calls that report one: ttft_calls), the median decode rate, and the exact
-- cost per call (Decimal; NULL when no call of the group was priced).
CREATE OR REPLACE VIEW {{db}}.v_model_latency {{on_cluster}} AS
SELECT
    toDate(timestamp) AS day,
    tenant_id,
    provider,
    model,
    currency,
    count() AS calls,
    quantile(0.5)(duration_ms) AS p50_duration_ms,
    quantile(0.95)(duration_ms) AS p95_duration_ms,
    count(time_to_first_token_ms) AS ttft_calls,
    quantile(0.5)(time_to_first_token_ms) AS p50_ttft_ms,
    quantile(0.95)(time_to_first_token_ms) AS p95_ttft_ms,
    quantile(0.5)(output_tokens_per_second) AS p50_output_tokens_per_second,
    sum(total_cost) AS total_cost,
    total_cost / calls AS cost_per_call
FROM {{db}}.v_call_latency
GROUP BY day, tenant_id, provider, model, currency
;
-- Tool-call latency per context and tool, from the tool steps (execute_tool spans).
CREATE OR REPLACE VIEW {{db}}.v_tool_latency {{on_cluster}} AS
SELECT
    tenant_id,
    context_id,
    name AS tool,
    count() AS tool_calls,
    countIf(status = 'error') AS tool_errors,
    sum(duration_ms) AS total_ms,
    avg(duration_ms) AS avg_ms,
    max(duration_ms) AS max_ms,
    min(timestamp) AS first_seen,
    max(timestamp) AS last_seen
FROM {{db}}.v_context_steps
WHERE kind = 'tool'
GROUP BY tenant_id, context_id, tool
;
-- Contexts that ran a tool loop, with the loop figures of context_costs.
CREATE OR REPLACE VIEW {{db}}.v_context_loops {{on_cluster}} AS
SELECT
    tenant_id,
    context_id,
    workflow_name,
    feature,
    first_seen,
    last_seen,
    calls,
    tool_calls,
    tool_loops,
    loop_steps,
    loop_tokens,
    loop_cost,
    prompt_growth_per_step,
    input_tokens + output_tokens AS tokens,
    total_cost,
    currency
FROM {{db}}.context_costs FINAL
WHERE tool_loops > 0
;
-- Spend per policy path (guard or route) and day: `GROUP BY policy_path` of the billed calls.
CREATE OR REPLACE VIEW {{db}}.v_policy_daily {{on_cluster}} AS
SELECT
    toDate(timestamp) AS day,
    tenant_id,
    policy_path,
    currency,
    count() AS calls,
    countIf(price_status = 'unpriced') AS unpriced_calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(total_cost) AS total_cost
FROM {{db}}.v_calls
GROUP BY day, tenant_id, policy_path, currency
