-- Views that answer the questions people ask first (README "Questions and their SQL"). All read the
-- exact, deduplicated data (FINAL or the recomputed aggregates), so re-delivered spans never move them.
-- Money stays Decimal; sums of Decimal(18, 12) are Decimal(38, 12).

-- Spend per tenant per day (UTC), from the hourly roll-up.
CREATE VIEW IF NOT EXISTS {{db}}.v_tenant_daily {{on_cluster}} AS
SELECT
    toDate(hour) AS day,
    tenant_id,
    currency,
    sum(calls) AS calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(total_cost) AS total_cost
FROM {{db}}.cost_hourly FINAL
GROUP BY day, tenant_id, currency
;
-- Token efficiency: input/output ratio and cost per 1k tokens, per tenant, model and day.
CREATE VIEW IF NOT EXISTS {{db}}.v_token_efficiency {{on_cluster}} AS
SELECT
    toDate(hour) AS day,
    tenant_id,
    provider,
    model,
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    round(input_tokens / greatest(output_tokens, 1), 2) AS input_output_ratio,
    sum(total_cost) / greatest(input_tokens + output_tokens, 1) * 1000 AS cost_per_1k_tokens,
    currency
FROM {{db}}.cost_hourly FINAL
GROUP BY day, tenant_id, provider, model, currency
;
-- Cache savings per call: what prompt-cache reads would have cost at the call's own input rate
-- (input_cost / uncached input tokens, so price tiers are respected) minus what they cost; and
-- responses served from a response cache (price_status = 'cache_hit', 0 USD, no model call).
CREATE VIEW IF NOT EXISTS {{db}}.v_cache_savings {{on_cluster}} AS
SELECT
    toDate(timestamp) AS day,
    tenant_id,
    provider,
    model,
    currency,
    sum(cache_read_tokens) AS cached_input_tokens,
    sum(cache_read_cost) AS paid_for_cached_input,
    sumIf(
        cache_read_tokens * (input_cost / (input_tokens - cache_read_tokens - cache_write_tokens))
            - cache_read_cost,
        price_status = 'priced' AND input_tokens > cache_read_tokens + cache_write_tokens
    ) AS saved_by_prompt_cache,
    countIf(price_status = 'cache_hit') AS response_cache_hits
FROM {{db}}.llm_calls FINAL
WHERE cache_read_tokens > 0 OR price_status = 'cache_hit'
GROUP BY day, tenant_id, provider, model, currency
;
-- Every call whose model has no price: stored and counted, with NULL cost (never 0).
CREATE VIEW IF NOT EXISTS {{db}}.v_unpriced_calls {{on_cluster}} AS
SELECT timestamp, tenant_id, context_id, provider, model, input_tokens, output_tokens, price_source, trace_id, span_id
FROM {{db}}.llm_calls FINAL
WHERE price_status = 'unpriced'
;
-- Cost per outcome: contexts on which the app recorded `tokenbook.outcome` (e.g. "resolved"), with
-- what each outcome cost on average, per tenant and workflow.
CREATE VIEW IF NOT EXISTS {{db}}.v_outcome_costs {{on_cluster}} AS
SELECT
    tenant_id,
    workflow_name,
    outcome,
    count() AS contexts,
    sum(total_cost) AS total_cost,
    total_cost / contexts AS cost_per_outcome,
    sum(input_tokens + output_tokens) / contexts AS tokens_per_outcome,
    currency
FROM {{db}}.context_costs FINAL
WHERE outcome != ''
GROUP BY tenant_id, workflow_name, outcome, currency
;
-- Month-end forecast per tenant (UTC month): this month's spend so far, extrapolated at its run rate
-- (spend to date / elapsed time of the month) to the whole month, as the Spend overview dashboard does.
CREATE VIEW IF NOT EXISTS {{db}}.v_month_forecast {{on_cluster}} AS
WITH
    toDateTime(toStartOfMonth(now('UTC')), 'UTC') AS month_start,
    toDateTime(addMonths(toStartOfMonth(now('UTC')), 1), 'UTC') AS month_end,
    greatest(dateDiff('second', month_start, now()), 1) AS elapsed_seconds
SELECT
    tenant_id,
    currency,
    toDate(month_start) AS month,
    sum(total_cost) AS month_to_date,
    month_to_date * 86400 / elapsed_seconds AS daily_run_rate,
    month_to_date * dateDiff('second', month_start, month_end) / elapsed_seconds AS forecast
FROM {{db}}.cost_hourly FINAL
WHERE hour >= month_start
GROUP BY tenant_id, currency
;
-- Spend anomalies: days whose spend is more than 3x the tenant's trailing 14-day average (the mean of
-- the days with spend among the 14 before; a tenant's first day has no baseline). Exact Decimal.
CREATE VIEW IF NOT EXISTS {{db}}.v_spend_anomalies {{on_cluster}} AS
SELECT day, tenant_id, currency, day_cost AS total_cost, baseline, day_cost / baseline AS ratio
FROM
(
    SELECT
        day,
        tenant_id,
        currency,
        day_cost,
        sum(day_cost) OVER trailing / nullIf(count() OVER trailing, 0) AS baseline
    FROM
    (
        SELECT toDate(hour) AS day, tenant_id, currency, sum(total_cost) AS day_cost
        FROM {{db}}.cost_hourly FINAL
        GROUP BY day, tenant_id, currency
        HAVING day_cost IS NOT NULL
    )
    WINDOW trailing AS (PARTITION BY tenant_id, currency ORDER BY day ASC RANGE BETWEEN 14 PRECEDING AND 1 PRECEDING)
)
WHERE baseline > 0 AND day_cost > 3 * baseline
