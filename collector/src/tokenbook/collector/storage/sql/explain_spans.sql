-- `tokenbook explain TRACE_ID|CONTEXT_ID`: every span tokenbook recorded for that trace or context,
-- billed or not: the candidate rows of llm_calls with the rule that decided them, the profile and
-- scope their usage was read with, and the price source; then the steps (tools, wrappers, outcomes).
SELECT
    timestamp, trace_id, span_id, parent_span_id, 'call' AS recorded_as, kind, scope_name, scope_version,
    profile, provider, model, response_id, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, reasoning_tokens, price_status, billing_rule, billed_by, total_cost, currency,
    price_source, usage_issue
FROM v_call_candidates
WHERE (trace_id = {id:String} OR context_id = {id:String})
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
UNION ALL
SELECT
    timestamp, trace_id, span_id, parent_span_id, 'step', kind, '', '', '', '', name, '', 0, 0, 0, 0, 0,
    '', '', '', CAST(NULL, 'Nullable(Decimal(18, 12))'), '', '', ''
FROM v_context_steps
WHERE (trace_id = {id:String} OR context_id = {id:String})
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
ORDER BY timestamp, span_id
