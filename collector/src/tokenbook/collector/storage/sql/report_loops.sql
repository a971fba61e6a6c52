-- Contexts active in [since, until) that ran a tool loop, longest loop first (`tokenbook demo`; the
-- per-context aggregate's loop figures, see v_context_loops).
SELECT
    context_id,
    tenant_id,
    tool_loops,
    loop_steps,
    loop_tokens,
    loop_cost,
    prompt_growth_per_step,
    currency
FROM v_context_loops
WHERE last_seen >= {since:DateTime64(6, 'UTC')}
    AND first_seen < {until:DateTime64(6, 'UTC')}
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
ORDER BY loop_steps DESC, loop_tokens DESC, context_id
LIMIT {limit:UInt32}
