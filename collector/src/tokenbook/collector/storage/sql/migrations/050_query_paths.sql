-- Query paths that stay fast as the ledger grows (docs/design/query-paths.md).
--
-- Two roll-ups ordered time-first, for the questions people ask across tenants: spend per tenant and
-- spend per model over a time range. Both hold the billed calls only and are exact: the collector
-- recomputes them from cost_hourly FINAL (itself recomputed from llm_calls FINAL) for every
-- (tenant, hour) a write touched, right after cost_hourly; a recomputation replaces the group's row
-- (ReplacingMergeTree(refreshed_at)). A store migrated with data is backfilled from cost_hourly by
-- the collector's migrate step (Store.migrate).
CREATE TABLE IF NOT EXISTS {{table:tenant_hourly}} {{on_cluster}}
(
    hour DateTime('UTC'),
    tenant_id LowCardinality(String),
    currency LowCardinality(String),
    calls UInt64,
    unpriced_calls UInt64,
    errors UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    input_cost Nullable(Decimal(38, 12)),
    output_cost Nullable(Decimal(38, 12)),
    cache_read_cost Nullable(Decimal(38, 12)),
    cache_write_cost Nullable(Decimal(38, 12)),
    total_cost Nullable(Decimal(38, 12)),
    refreshed_at DateTime64(6, 'UTC')
)
ENGINE = {{engine:ReplacingMergeTree(refreshed_at)}}
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, tenant_id, currency)
;
{{distributed:tenant_hourly:cityHash64(tenant_id, hour)}}
;
-- Per model across all tenants (no tenant_id column: a tenant-scoped query reads nothing from it).
CREATE TABLE IF NOT EXISTS {{table:model_hourly}} {{on_cluster}}
(
    hour DateTime('UTC'),
    provider LowCardinality(String),
    model LowCardinality(String),
    currency LowCardinality(String),
    calls UInt64,
    unpriced_calls UInt64,
    errors UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    input_cost Nullable(Decimal(38, 12)),
    output_cost Nullable(Decimal(38, 12)),
    cache_read_cost Nullable(Decimal(38, 12)),
    cache_write_cost Nullable(Decimal(38, 12)),
    total_cost Nullable(Decimal(38, 12)),
    refreshed_at DateTime64(6, 'UTC')
)
ENGINE = {{engine:ReplacingMergeTree(refreshed_at)}}
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, provider, model, currency)
;
{{distributed:model_hourly:cityHash64(hour, provider, model)}}
;
-- Finding a context without its tenant: a bloom filter over context_id skips every granule that
-- cannot hold it (also under FINAL: use_skip_indexes_if_final).
ALTER TABLE {{table:context_costs}} {{on_cluster}}
    ADD INDEX IF NOT EXISTS idx_context_id context_id TYPE bloom_filter(0.01) GRANULARITY 1
;
ALTER TABLE {{table:context_costs}} {{on_cluster}} MATERIALIZE INDEX idx_context_id
;
-- FINAL where it is cheap: the ledger and the roll-ups are partitioned by the month of a column of
-- their sorting key's row identity (a re-delivered or re-priced span keeps its timestamp; a roll-up
-- group keeps its hour), so every version of a row lies in one partition and FINAL need not merge
-- across partitions (do_not_merge_across_partitions_select_final: parallel per partition, and
-- partitions outside the WHERE are pruned). Exact.
CREATE OR REPLACE VIEW {{db}}.v_calls {{on_cluster}} AS
SELECT * FROM {{db}}.llm_calls FINAL
WHERE price_status NOT IN ('duplicate_layer', 'wrapper')
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_call_candidates {{on_cluster}} AS
SELECT * FROM {{db}}.llm_calls FINAL
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_context_steps {{on_cluster}} AS
SELECT * FROM {{db}}.context_steps FINAL
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_cost_hourly {{on_cluster}} AS
SELECT * FROM {{db}}.cost_hourly FINAL
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_tenant_hourly {{on_cluster}} AS
SELECT * FROM {{db}}.tenant_hourly FINAL
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_model_hourly {{on_cluster}} AS
SELECT * FROM {{db}}.model_hourly FINAL
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_cost_daily {{on_cluster}} AS
SELECT
    toDate(hour) AS day,
    tenant_id, project_id, team_id, feature, service_name, provider, model, operation, currency,
    sum(calls) AS calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(errors) AS errors,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(input_cost) AS input_cost,
    sum(output_cost) AS output_cost,
    sum(cache_read_cost) AS cache_read_cost,
    sum(cache_write_cost) AS cache_write_cost,
    sum(total_cost) AS total_cost
FROM {{db}}.cost_hourly FINAL
GROUP BY day, tenant_id, project_id, team_id, feature, service_name, provider, model, operation, currency
SETTINGS do_not_merge_across_partitions_select_final = 1
;
-- Spend per tenant per day (UTC), from the time-first tenant roll-up.
CREATE OR REPLACE VIEW {{db}}.v_tenant_daily {{on_cluster}} AS
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
FROM {{db}}.tenant_hourly FINAL
GROUP BY day, tenant_id, currency
SETTINGS do_not_merge_across_partitions_select_final = 1
;
-- Spend per model per day (UTC), across tenants, from the time-first model roll-up.
CREATE OR REPLACE VIEW {{db}}.v_model_daily {{on_cluster}} AS
SELECT
    toDate(hour) AS day,
    provider,
    model,
    currency,
    sum(calls) AS calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(total_cost) AS total_cost
FROM {{db}}.model_hourly FINAL
GROUP BY day, provider, model, currency
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_token_efficiency {{on_cluster}} AS
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
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_cache_savings {{on_cluster}} AS
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
WHERE (cache_read_tokens > 0 OR price_status = 'cache_hit')
    AND price_status NOT IN ('duplicate_layer', 'wrapper')
GROUP BY day, tenant_id, provider, model, currency
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_unpriced_calls {{on_cluster}} AS
SELECT timestamp, tenant_id, context_id, provider, model, input_tokens, output_tokens, price_source, trace_id, span_id
FROM {{db}}.llm_calls FINAL
WHERE price_status = 'unpriced'
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_month_forecast {{on_cluster}} AS
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
FROM {{db}}.tenant_hourly FINAL
WHERE hour >= month_start
GROUP BY tenant_id, currency
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_spend_anomalies {{on_cluster}} AS
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
        FROM {{db}}.tenant_hourly FINAL
        GROUP BY day, tenant_id, currency
        HAVING day_cost IS NOT NULL
    )
    WINDOW trailing AS (PARTITION BY tenant_id, currency ORDER BY day ASC RANGE BETWEEN 14 PRECEDING AND 1 PRECEDING)
)
WHERE baseline > 0 AND day_cost > 3 * baseline
SETTINGS do_not_merge_across_partitions_select_final = 1
