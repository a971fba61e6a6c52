-- One budget's usage per (tenant, context) for every context active since `since`, over all of
-- that context's calls, from the deduplicated ledger (FINAL). Match keys and values are bound.
SELECT
    tenant_id,
    context_id,
    sum(input_tokens + output_tokens) AS tokens,
    sumIf(total_cost, total_cost IS NOT NULL AND currency = {currency:String}) AS cost,
    countIf(total_cost IS NULL OR currency != {currency:String}) AS unpriced_calls,
    max(timestamp) AS last_seen
FROM
(
    SELECT
        tenant_id, context_id, timestamp, input_tokens, output_tokens, total_cost, currency,
        mapConcat(
            map(
                'tenant', toString(tenant_id), 'user', user_id, 'project', toString(project_id),
                'team', toString(team_id), 'feature', toString(feature),
                'service', toString(service_name), 'context', context_id
            ),
            mapApply((k, v) -> (concat('tags.', k), v), tags)
        ) AS attrs
    FROM {{db}}.llm_calls FINAL
    WHERE price_status NOT IN ('duplicate_layer', 'wrapper')
        AND (tenant_id, context_id) IN (
        SELECT tenant_id, context_id FROM {{db}}.llm_calls WHERE timestamp >= {since:DateTime64(6, 'UTC')}
    )
)
WHERE arrayAll((k, v) -> attrs[k] = v, {match_keys:Array(String)}, {match_values:Array(String)})
GROUP BY tenant_id, context_id
