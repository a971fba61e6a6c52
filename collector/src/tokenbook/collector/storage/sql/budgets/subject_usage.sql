-- One subject's usage of one rule in one window, from the deduplicated ledger (FINAL), counting only
-- calls ingested before `before`: rebuilds a counter that was evicted from memory
-- (budgets.max_subjects) while the calls ingested since are counted live. The subject and the match
-- are the rule's columns (collector/budgets/columns.py), compared one by one so that the ledger's
-- sorting key (tenant, then context) finds the subject's calls; every value is bound.
SELECT
    sum(input_tokens + output_tokens) AS tokens,
    sumIf(total_cost, total_cost IS NOT NULL AND currency = {currency:String}) AS cost,
    countIf(total_cost IS NULL OR currency != {currency:String}) AS unpriced_calls
FROM {{db}}.llm_calls FINAL
WHERE timestamp >= {since:DateTime64(6, 'UTC')} AND timestamp < {until:DateTime64(6, 'UTC')}
    AND ingested_at < {before:DateTime64(6, 'UTC')}
    AND price_status NOT IN ('duplicate_layer', 'wrapper')
    AND {{expr:match}}
    AND {{expr:subject_is}}
-- every version of a call lies in its month's partition (migration 050): FINAL is exact per partition
SETTINGS do_not_merge_across_partitions_select_final = 1
