-- `tokenbook report --context ID`: the context's tool loops, from the per-context aggregate.
SELECT tenant_id, tool_loops, loop_steps, loop_tokens, loop_cost, prompt_growth_per_step, currency
FROM v_context_costs
WHERE context_id = {context:String}
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
    AND tool_loops > 0
ORDER BY tenant_id
