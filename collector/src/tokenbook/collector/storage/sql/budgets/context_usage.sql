-- One budget's usage per (tenant, context) for every context active since `since`, over all of
-- that context's calls, from the deduplicated ledger (FINAL). The match is the rule's columns
-- (collector/budgets/columns.py); every value is bound.
SELECT
    tenant_id,
    context_id,
    sum(input_tokens + output_tokens) AS tokens,
    sumIf(total_cost, total_cost IS NOT NULL AND currency = {currency:String}) AS cost,
    countIf(total_cost IS NULL OR currency != {currency:String}) AS unpriced_calls,
    max(timestamp) AS last_seen
FROM {{db}}.llm_calls FINAL
WHERE price_status NOT IN ('duplicate_layer', 'wrapper')
    AND {{expr:match}}
    AND (tenant_id, context_id) IN (
        SELECT tenant_id, context_id FROM {{db}}.llm_calls WHERE timestamp >= {since:DateTime64(6, 'UTC')}
    )
GROUP BY tenant_id, context_id
-- every version of a call lies in its month's partition (migration 050): FINAL is exact per partition
SETTINGS do_not_merge_across_partitions_select_final = 1
