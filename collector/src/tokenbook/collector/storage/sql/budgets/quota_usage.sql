-- One quota's usage per subject in its previous and current windows, from the deduplicated ledger
-- (FINAL): the exact counters a restarted collector starts from. The subject and the match are the
-- rule's columns (collector/budgets/columns.py); every value is bound.
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
GROUP BY subject, current
-- every version of a call lies in its month's partition (migration 050): FINAL is exact per partition
SETTINGS do_not_merge_across_partitions_select_final = 1
