-- One subject's usage of one rule in one window, from the deduplicated ledger (FINAL), counting only
-- calls ingested before `before`: rebuilds a counter that was evicted from memory
-- (budgets.max_subjects) while the calls ingested since are counted live. Every value is bound.
SELECT
    sum(input_tokens + output_tokens) AS tokens,
    sumIf(total_cost, total_cost IS NOT NULL AND currency = {currency:String}) AS cost,
    countIf(total_cost IS NULL OR currency != {currency:String}) AS unpriced_calls
FROM
(
    SELECT
        input_tokens, output_tokens, total_cost, currency,
        mapConcat(
            map(
                'tenant', toString(tenant_id), 'user', user_id, 'project', toString(project_id),
                'team', toString(team_id), 'feature', toString(feature),
                'service', toString(service_name), 'context', context_id
            ),
            mapApply((k, v) -> (concat('tags.', k), v), tags)
        ) AS attrs
    FROM {{db}}.llm_calls FINAL
    WHERE timestamp >= {since:DateTime64(6, 'UTC')} AND timestamp < {until:DateTime64(6, 'UTC')}
      AND ingested_at < {before:DateTime64(6, 'UTC')}
)
WHERE arrayAll((k, v) -> attrs[k] = v, {match_keys:Array(String)}, {match_values:Array(String)})
  AND arrayMap(k -> attrs[k], {per:Array(String)}) = {subject:Array(String)}
