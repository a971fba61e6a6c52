-- The newest stored version of each of the given (trace_id, span_id) keys that the ledger holds: the
-- fleet reconciliation stops counting a span from memory once storage has it (at its version or newer).
SELECT trace_id, span_id, max(version)
FROM {{db}}.llm_calls
WHERE (trace_id, span_id) IN (
    SELECT tupleElement(k, 1), tupleElement(k, 2)
    FROM (SELECT arrayJoin({keys:Array(Tuple(String, String))}) AS k)
)
GROUP BY trace_id, span_id
