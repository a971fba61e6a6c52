-- Which of the given calls are already in the ledger, by their identity (tenant_id, context_id,
-- trace_id, span_id: the sorting key, so only their granules are read): spans still in the
-- write-ahead log at start may or may not have reached ClickHouse before the stop.
SELECT DISTINCT trace_id, span_id
FROM {{db}}.llm_calls
WHERE (tenant_id, context_id, trace_id, span_id) IN {keys:Array(Tuple(String, String, String, String))}
