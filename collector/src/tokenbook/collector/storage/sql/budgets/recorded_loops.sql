-- Loop rules: which of the given (rule, tenant, context) crossings budget_events already records (sent
-- by this process or before a restart): those are never sent again.
SELECT DISTINCT rule, tenant_id, context_id
FROM {{db}}.budget_events FINAL
WHERE kind = 'loop'
    AND tenant_id IN {tenants:Array(String)}
    AND has({keys:Array(Tuple(String, String, String))}, (toString(rule), toString(tenant_id), context_id))
