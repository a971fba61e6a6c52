-- `tokenbook report --context ID`: one context's model calls in time order, with tokens and cost;
-- spans another span bills (price_status duplicate_layer / wrapper) are listed with the rule and the
-- span that bills them, and count in no total. Then each call's latency, policy path, prompt composition
-- and context-window saturation (NULL when unknown).
SELECT
    timestamp,
    tenant_id,
    span_id,
    provider,
    model,
    operation,
    attempt,
    status,
    input_tokens,
    output_tokens,
    cache_read_tokens,
    cache_write_tokens,
    reasoning_tokens,
    price_status,
    total_cost,
    billed_cost,
    currency,
    billing_rule,
    billed_by,
    duration_ms,
    time_to_first_token_ms,
    output_tokens_per_second,
    policy_path,
    prompt_system_tokens,
    prompt_history_tokens,
    prompt_retrieved_tokens,
    prompt_tool_result_tokens,
    prompt_user_tokens,
    prompt_tool_definition_tokens,
    prompt_overhead_tokens,
    prompt_estimated,
    context_window,
    context_saturation
FROM v_call_candidates
WHERE context_id = {context:String}
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
ORDER BY timestamp, span_id
