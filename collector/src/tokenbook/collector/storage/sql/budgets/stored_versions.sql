-- The newest stored version of each of the given calls that the ledger holds, by the calls' identity
-- (tenant_id, context_id, trace_id, span_id: the sorting key, so only their granules are read): the
-- fleet reconciliation stops counting a span from memory once storage has it (at its version or newer).
SELECT trace_id, span_id, max(version)
FROM {{db}}.llm_calls
WHERE (tenant_id, context_id, trace_id, span_id) IN {keys:Array(Tuple(String, String, String, String))}
GROUP BY trace_id, span_id
