-- Loop rules at start: the contexts active since `since` whose longest loop has more than `steps` model
-- calls or whose prompt grows by more than `growth` tokens per step (the loosest limits of the rules).
SELECT
    tenant_id, context_id, user_id, project_id, feature, tool_loops, loop_steps, loop_tokens, loop_cost,
    prompt_growth_per_step, currency
FROM {{db}}.context_costs FINAL
WHERE last_seen >= {since:DateTime64(6, 'UTC')}
    AND tool_loops > 0
    AND (loop_steps > {steps:UInt32} OR prompt_growth_per_step > {growth:Float64})
