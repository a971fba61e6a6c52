-- `tokenbook report --by`: cost per tenant, model, project, team, user, policy path or feature over
-- [since, until), from the deduplicated ledger (v_calls = llm_calls FINAL). Unqualified names resolve
-- to the store's database. billed_cost is what the tenants' price books bill (total_cost is the list
-- cost). With {by_day} = 1 each key's figures are given per UTC day, else `day` is one constant.
SELECT
    multiIf(
        {by:String} = 'tenant', toString(tenant_id),
        {by:String} = 'model', toString(model),
        {by:String} = 'project', toString(project_id),
        {by:String} = 'team', toString(team_id),
        {by:String} = 'user', user_id,
        {by:String} = 'policy', toString(policy_path),
        toString(feature)
    ) AS key,
    currency,
    if({by_day:UInt8} = 1, toDate(timestamp), toDate(0)) AS day,
    count() AS calls,
    countIf(price_status = 'unpriced') AS unpriced_calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(total_cost) AS total_cost,
    sum(billed_cost) AS billed_cost
FROM v_calls
WHERE timestamp >= {since:DateTime64(6, 'UTC')}
    AND timestamp < {until:DateTime64(6, 'UTC')}
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
GROUP BY key, currency, day
ORDER BY total_cost DESC NULLS LAST, key, day
