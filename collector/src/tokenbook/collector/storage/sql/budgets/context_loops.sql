-- Loop rules (collector/budgets/loops.py): the loop figures of the contexts the store just recomputed,
-- from the exact per-context aggregate. The filter is the cross product of the tenants and context IDs
-- (as in refresh_context_costs.sql): a context outside the pairs is checked too, which is harmless.
SELECT
    tenant_id, context_id, user_id, project_id, feature, tool_loops, loop_steps, loop_tokens, loop_cost,
    prompt_growth_per_step, currency
FROM {{db}}.context_costs FINAL
WHERE tenant_id IN {tenants:Array(String)} AND context_id IN {contexts:Array(String)} AND tool_loops > 0
