-- Recompute tenant_hourly for the touched (tenant, hour) keys from cost_hourly FINAL, just refreshed
-- for the same keys (exact: cost_hourly is recomputed from the deduplicated ledger, billed calls
-- only). The filter is the cross product of the touched tenants and hours, a primary-key range of
-- cost_hourly (tenant_id, hour, ...). Each group's new row replaces the previous one.
INSERT INTO {{db}}.tenant_hourly (
    hour, tenant_id, currency, calls, unpriced_calls, errors, input_tokens, output_tokens,
    cache_read_tokens, cache_write_tokens, reasoning_tokens, input_cost, output_cost, cache_read_cost,
    cache_write_cost, total_cost, billed_cost, refreshed_at
)
SELECT
    hour, tenant_id, currency,
    sum(calls), sum(unpriced_calls), sum(errors), sum(input_tokens), sum(output_tokens),
    sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(input_cost),
    sum(output_cost), sum(cache_read_cost), sum(cache_write_cost), sum(total_cost), sum(billed_cost), now64(6)
FROM {{db}}.cost_hourly FINAL
WHERE tenant_id IN {tenants:Array(String)} AND hour IN {hours:Array(DateTime('UTC'))}
GROUP BY hour, tenant_id, currency
SETTINGS do_not_merge_across_partitions_select_final = 1
