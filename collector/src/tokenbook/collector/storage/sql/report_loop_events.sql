-- The loop crossings recorded in [since, until) (`tokenbook demo`): one per loop rule and context.
SELECT event_time, rule, tenant_id, context_id, used_tokens, message
FROM v_budget_events
WHERE kind = 'loop'
    AND event_time >= {since:DateTime64(6, 'UTC')}
    AND event_time < {until:DateTime64(6, 'UTC')}
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
ORDER BY event_time, rule, context_id
