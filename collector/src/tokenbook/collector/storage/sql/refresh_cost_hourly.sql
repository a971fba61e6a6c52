-- Recompute cost_hourly for the touched (tenant, hour) keys from the deduplicated ledger; the filter
-- is the cross product of the touched tenants and hours (recomputing an untouched group is harmless).
-- Each group's new row replaces the previous one (ReplacingMergeTree(refreshed_at)). Rows another span
-- bills (duplicate_layer / wrapper) add nothing but keep their group's row recomputed (to 0 calls).
--
-- The hours' calls are read by time from the ledger's time-ordered projection (migration 160), not
-- with FINAL: FINAL reads every granule of the touched tenants in the month partition (the ledger is
-- sorted by tenant and context), so an hour of a busy tenant would cost its month. Every version of a
-- span has the same timestamp, so the newest version of each span among the rows of the window (the
-- highest version, then the latest ingestion) is the row FINAL keeps (LIMIT 1 BY after ORDER BY).
INSERT INTO {{db}}.cost_hourly (
    hour, tenant_id, project_id, team_id, feature, service_name, provider, model, operation, currency,
    calls, unpriced_calls, errors, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    reasoning_tokens, input_cost, output_cost, cache_read_cost, cache_write_cost, total_cost,
    billed_cost, refreshed_at
)
WITH price_status NOT IN ('duplicate_layer', 'wrapper') AS billed
SELECT
    toStartOfHour(timestamp) AS hour,
    tenant_id, project_id, team_id, feature, service_name, provider, model, operation, currency,
    countIf(billed) AS calls,
    countIf(price_status = 'unpriced') AS unpriced_calls,
    countIf(billed AND status = 'error') AS errors,
    sumIf(input_tokens, billed),
    sumIf(output_tokens, billed),
    sumIf(cache_read_tokens, billed),
    sumIf(cache_write_tokens, billed),
    sumIf(reasoning_tokens, billed),
    sumIf(input_cost, billed),
    sumIf(output_cost, billed),
    sumIf(cache_read_cost, billed),
    sumIf(cache_write_cost, billed),
    sumIf(total_cost, billed),
    sumIf(billed_cost, billed),
    now64(6)
FROM
(
    SELECT
        timestamp, tenant_id, project_id, team_id, feature, service_name, provider, model, operation,
        currency, price_status, status, input_tokens, output_tokens, cache_read_tokens,
        cache_write_tokens, reasoning_tokens, input_cost, output_cost, cache_read_cost,
        cache_write_cost, total_cost, billed_cost
    FROM {{db}}.llm_calls
    PREWHERE timestamp >= {since:DateTime64(6, 'UTC')}
        AND timestamp < {until:DateTime64(6, 'UTC')}
        AND tenant_id IN {tenants:Array(String)}
        AND toStartOfHour(timestamp) IN {hours:Array(DateTime('UTC'))}
    ORDER BY version DESC, ingested_at DESC
    LIMIT 1 BY tenant_id, context_id, trace_id, span_id
)
GROUP BY hour, tenant_id, project_id, team_id, feature, service_name, provider, model, operation, currency
