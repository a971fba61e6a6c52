-- The decision pass (storage/decisions.py): every candidate row (a span with usage, or one that was
-- recorded before migration 030) related to the touched traces, response IDs and match buckets,
-- from the deduplicated ledger. The caller keeps the rows that match a key exactly.
SELECT *
FROM {{db}}.llm_calls FINAL
WHERE timestamp >= {since:DateTime64(6, 'UTC')}
    AND timestamp < {until:DateTime64(6, 'UTC')}
    AND price_status != 'not_billable'
    AND (
        trace_id IN {traces:Array(String)}
        OR (response_id != '' AND response_id IN {response_ids:Array(String)})
        OR (input_tokens IN {inputs:Array(UInt64)} AND service_instance IN {instances:Array(String)})
    )
