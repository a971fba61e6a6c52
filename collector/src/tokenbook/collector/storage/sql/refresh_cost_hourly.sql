-- Recompute cost_hourly for the touched (tenant, hour) keys from the deduplicated ledger (billed rows;
-- duplicate_layer / wrapper rows are left out); the filter
-- is the cross product of the touched tenants and hours (recomputing an untouched group is harmless).
-- Each group's new row replaces the previous one (ReplacingMergeTree(refreshed_at)).
INSERT INTO {{db}}.cost_hourly (
    hour, tenant_id, project_id, team_id, feature, service_name, provider, model, operation, currency,
    calls, unpriced_calls, errors, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    reasoning_tokens, input_cost, output_cost, cache_read_cost, cache_write_cost, total_cost,
    refreshed_at
)
SELECT
    toStartOfHour(timestamp) AS hour,
    tenant_id, project_id, team_id, feature, service_name, provider, model, operation, currency,
    count() AS calls,
    countIf(price_status = 'unpriced') AS unpriced_calls,
    countIf(status = 'error') AS errors,
    sum(input_tokens),
    sum(output_tokens),
    sum(cache_read_tokens),
    sum(cache_write_tokens),
    sum(reasoning_tokens),
    sum(input_cost),
    sum(output_cost),
    sum(cache_read_cost),
    sum(cache_write_cost),
    sum(total_cost),
    now64(6)
FROM {{db}}.llm_calls FINAL
WHERE timestamp >= {since:DateTime64(6, 'UTC')}
    AND timestamp < {until:DateTime64(6, 'UTC')}
    AND tenant_id IN {tenants:Array(String)}
    AND toStartOfHour(timestamp) IN {hours:Array(DateTime('UTC'))}
    AND price_status NOT IN ('duplicate_layer', 'wrapper')
GROUP BY hour, tenant_id, project_id, team_id, feature, service_name, provider, model, operation, currency
