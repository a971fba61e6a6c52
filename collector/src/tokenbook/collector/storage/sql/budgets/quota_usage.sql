-- One quota's usage per subject in its previous and current windows, from the deduplicated ledger
-- (FINAL): the exact counters a restarted collector starts from. `per` / `match_keys` are attribute
-- keys (tenant, user, project, team, feature, service, context, tags.<key>), all bound.
SELECT
    arrayMap(k -> attrs[k], {per:Array(String)}) AS subject,
    timestamp >= {current_start:DateTime64(6, 'UTC')} AS current,
    sum(input_tokens + output_tokens) AS tokens,
    sumIf(total_cost, total_cost IS NOT NULL AND currency = {currency:String}) AS cost,
    countIf(total_cost IS NULL OR currency != {currency:String}) AS unpriced_calls
FROM
(
    SELECT
        timestamp, input_tokens, output_tokens, total_cost, currency,
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
        AND price_status NOT IN ('duplicate_layer', 'wrapper')
)
WHERE arrayAll((k, v) -> attrs[k] = v, {match_keys:Array(String)}, {match_values:Array(String)})
GROUP BY subject, current
