-- Recompute model_hourly for the touched hours, across every tenant with spend in them (the tenants of
-- tenant_hourly in those hours: a time-first roll-up, so a primary-key range), from cost_hourly FINAL
-- (tenant-first: each tenant's hours are a primary-key range). Exact: every (tenant, hour) group of
-- cost_hourly has its tenant_hourly row, refreshed in the same step. Each group's new row replaces the
-- previous one.
INSERT INTO {{db}}.model_hourly (
    hour, provider, model, currency, calls, unpriced_calls, errors, input_tokens, output_tokens,
    cache_read_tokens, cache_write_tokens, reasoning_tokens, input_cost, output_cost, cache_read_cost,
    cache_write_cost, total_cost, billed_cost, refreshed_at
)
SELECT
    hour, provider, model, currency,
    sum(calls), sum(unpriced_calls), sum(errors), sum(input_tokens), sum(output_tokens),
    sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(input_cost),
    sum(output_cost), sum(cache_read_cost), sum(cache_write_cost), sum(total_cost), sum(billed_cost), now64(6)
FROM {{db}}.cost_hourly FINAL
WHERE tenant_id IN (SELECT DISTINCT tenant_id FROM {{db}}.tenant_hourly WHERE hour IN {hours:Array(DateTime('UTC'))})
    AND hour IN {hours:Array(DateTime('UTC'))}
GROUP BY hour, provider, model, currency
SETTINGS do_not_merge_across_partitions_select_final = 1
