-- `tokenbook report --by tenant|model|project|team|feature`: cost per key over [since, until), read from
-- the hourly roll-ups for the whole hours [whole_since, whole_until) and from the ledger for the partial
-- hours at either end, so the figures are exactly those of the billed calls (v_calls) in the window.
-- {source} picks the roll-up: 'tenant' tenant_hourly, 'model' model_hourly (no tenant filter), else
-- cost_hourly (tenant-first: cheap with a tenant). Without a whole hour in the window, the caller
-- passes whole_since = whole_until = until and everything comes from the ledger. The ledger edges are read without FINAL: every
-- version of a span has the same timestamp, so the newest version per span identity among the rows of
-- the edge window is the row FINAL would keep (LIMIT 1 BY after ORDER BY version DESC).
-- billed_cost is what the tenants' price books bill (total_cost is the list cost). With {by_day} = 1
-- each key's figures are given per UTC day (to be converted at each day's exchange rate), else `day`
-- is one constant. A roll-up group whose calls were all un-billed since (by a later decision) is kept
-- with zero calls; a key without a billed call in the window is left out, as v_calls has no row for it.
-- The ledger edges read the ledger's time-ordered projection (migration 130): the rows of the edge
-- window, not whole month partitions.
SELECT
    key,
    currency,
    if({by_day:UInt8} = 1, day, toDate(0)) AS day,
    sum(calls) AS calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(total_cost) AS total_cost,
    sum(billed_cost) AS billed_cost
FROM
(
    SELECT
        toString(tenant_id) AS key, currency, toDate(hour) AS day, calls, unpriced_calls, input_tokens,
        output_tokens, cache_read_tokens, cache_write_tokens, total_cost, billed_cost
    FROM v_tenant_hourly
    WHERE {source:String} = 'tenant'
        AND hour >= {whole_since:DateTime64(6, 'UTC')} AND hour < {whole_until:DateTime64(6, 'UTC')}
        AND ({tenant:String} = '' OR tenant_id = {tenant:String})
    UNION ALL
    SELECT
        toString(model) AS key, currency, toDate(hour) AS day, calls, unpriced_calls, input_tokens,
        output_tokens, cache_read_tokens, cache_write_tokens, total_cost, billed_cost
    FROM v_model_hourly
    WHERE {source:String} = 'model'
        AND hour >= {whole_since:DateTime64(6, 'UTC')} AND hour < {whole_until:DateTime64(6, 'UTC')}
    UNION ALL
    SELECT
        multiIf(
            {by:String} = 'tenant', toString(tenant_id),
            {by:String} = 'model', toString(model),
            {by:String} = 'project', toString(project_id),
            {by:String} = 'team', toString(team_id),
            toString(feature)
        ) AS key,
        currency, toDate(hour) AS day, calls, unpriced_calls, input_tokens, output_tokens,
        cache_read_tokens, cache_write_tokens, total_cost, billed_cost
    FROM v_cost_hourly
    WHERE {source:String} = 'hourly'
        AND hour >= {whole_since:DateTime64(6, 'UTC')} AND hour < {whole_until:DateTime64(6, 'UTC')}
        AND ({tenant:String} = '' OR tenant_id = {tenant:String})
    UNION ALL
    SELECT
        multiIf(
            {by:String} = 'tenant', toString(tenant_id),
            {by:String} = 'model', toString(model),
            {by:String} = 'project', toString(project_id),
            {by:String} = 'team', toString(team_id),
            toString(feature)
        ) AS key,
        currency, toDate(timestamp) AS day, toUInt64(1) AS calls,
        toUInt64(price_status = 'unpriced') AS unpriced_calls, input_tokens, output_tokens,
        cache_read_tokens, cache_write_tokens, total_cost, billed_cost
    FROM
    (
        SELECT
            timestamp, tenant_id, model, project_id, team_id, feature, currency, price_status,
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, total_cost, billed_cost
        FROM llm_calls
        WHERE (
                (timestamp >= {since:DateTime64(6, 'UTC')} AND timestamp < {whole_since:DateTime64(6, 'UTC')})
                OR (timestamp >= {whole_until:DateTime64(6, 'UTC')} AND timestamp < {until:DateTime64(6, 'UTC')})
            )
            AND ({tenant:String} = '' OR tenant_id = {tenant:String})
        ORDER BY version DESC
        LIMIT 1 BY tenant_id, context_id, trace_id, span_id
    )
    WHERE price_status NOT IN ('duplicate_layer', 'wrapper')
)
GROUP BY key, currency, day
HAVING calls > 0
ORDER BY total_cost DESC NULLS LAST, key, day
