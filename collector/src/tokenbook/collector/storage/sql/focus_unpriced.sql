-- `tokenbook export focus`: billed calls of [since, until) left out of the export because they have no
-- price (their cost is unknown, never 0), per tenant and model, so the export can say so.
SELECT tenant_id, provider, model, count() AS calls
FROM v_calls
WHERE timestamp >= {since:DateTime64(6, 'UTC')}
    AND timestamp < {until:DateTime64(6, 'UTC')}
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
    AND price_status = 'unpriced'
GROUP BY tenant_id, provider, model
ORDER BY calls DESC, tenant_id, model
