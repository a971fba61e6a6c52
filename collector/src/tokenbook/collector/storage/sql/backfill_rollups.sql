-- Fill tenant_hourly and model_hourly from the whole of cost_hourly (after migration 050 on a store
-- that already holds data, or to rebuild them): the same groups the refresh recomputes.
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
GROUP BY hour, tenant_id, currency
SETTINGS do_not_merge_across_partitions_select_final = 1, max_partitions_per_insert_block = 0
;
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
GROUP BY hour, provider, model, currency
SETTINGS do_not_merge_across_partitions_select_final = 1, max_partitions_per_insert_block = 0
