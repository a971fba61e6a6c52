-- Fleet reconciliation (collector/budgets/fleet.py): one quota's usage per subject in its previous
-- and current windows, from the deduplicated ledger (FINAL), for the tenants with calls ingested since
-- `active_since` (by any collector) or in `own_tenants` (this collector's unreconciled calls), leaving
-- out the `own` spans this collector counts from memory. The subject and the match are the rule's
-- columns (collector/budgets/columns.py); every value is bound.
SELECT
    {{expr:subject}} AS subject,
    timestamp >= {current_start:DateTime64(6, 'UTC')} AS current,
    sum(input_tokens + output_tokens) AS tokens,
    sumIf(total_cost, total_cost IS NOT NULL AND currency = {currency:String}) AS cost,
    countIf(total_cost IS NULL OR currency != {currency:String}) AS unpriced_calls
FROM {{db}}.llm_calls FINAL
WHERE timestamp >= {since:DateTime64(6, 'UTC')} AND timestamp < {until:DateTime64(6, 'UTC')}
    AND price_status NOT IN ('duplicate_layer', 'wrapper')
    AND {{expr:match}}
    AND (
        has({own_tenants:Array(String)}, toString(tenant_id))
        OR tenant_id IN (
            SELECT DISTINCT tenant_id FROM {{db}}.llm_calls
            WHERE ingested_at >= {active_since:DateTime64(6, 'UTC')}
                AND timestamp >= {since:DateTime64(6, 'UTC')} AND timestamp < {until:DateTime64(6, 'UTC')}
        )
    )
    AND (trace_id, span_id) NOT IN (
        SELECT tupleElement(k, 1), tupleElement(k, 2)
        FROM (SELECT arrayJoin({own:Array(Tuple(String, String))}) AS k)
    )
GROUP BY subject, current
-- every version of a call lies in its month's partition (migration 050): FINAL is exact per partition
SETTINGS do_not_merge_across_partitions_select_final = 1
