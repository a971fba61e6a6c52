-- Fleet reconciliation (collector/budgets/fleet.py): one budget's usage per (tenant, context), over
-- all of each context's calls, from the deduplicated ledger (FINAL), for the contexts with calls
-- ingested since `active_since` (by any collector) or in `own_contexts`, leaving out the `own` spans
-- this collector counts from memory. The match is the rule's columns (collector/budgets/columns.py);
-- every value is bound.
SELECT
    tenant_id,
    context_id,
    sum(input_tokens + output_tokens) AS tokens,
    sumIf(total_cost, total_cost IS NOT NULL AND currency = {currency:String}) AS cost,
    countIf(total_cost IS NULL OR currency != {currency:String}) AS unpriced_calls
FROM {{db}}.llm_calls FINAL
WHERE price_status NOT IN ('duplicate_layer', 'wrapper')
    AND {{expr:match}}
    AND (
        has({own_contexts:Array(Tuple(String, String))}, (toString(tenant_id), context_id))
        OR (tenant_id, context_id) IN (
            SELECT DISTINCT tenant_id, context_id FROM {{db}}.llm_calls
            WHERE ingested_at >= {active_since:DateTime64(6, 'UTC')}
        )
    )
    AND (trace_id, span_id) NOT IN (
        SELECT tupleElement(k, 1), tupleElement(k, 2)
        FROM (SELECT arrayJoin({own:Array(Tuple(String, String))}) AS k)
    )
GROUP BY tenant_id, context_id
-- every version of a call lies in its month's partition (migration 050): FINAL is exact per partition
SETTINGS do_not_merge_across_partitions_select_final = 1
