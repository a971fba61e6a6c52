-- Which of the given (trace_id, span_id) keys are already in the ledger: spans still in the
-- write-ahead log at start may or may not have reached ClickHouse before the stop.
SELECT DISTINCT trace_id, span_id
FROM {{db}}.llm_calls
WHERE has({keys:Array(Tuple(String, String))}, (trace_id, span_id))
