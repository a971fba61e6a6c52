-- The decision pass (storage/decisions.py): every candidate row (a span with usage, or one that was
-- recorded before migration 030) related to the touched traces, response IDs and match buckets,
-- from the deduplicated ledger; a bucket's calls only where they meet the buckets' time span. The
-- caller keeps the rows that match a key exactly.
SELECT *
FROM {{db}}.llm_calls FINAL
WHERE timestamp >= {since:DateTime64(6, 'UTC')}
    AND timestamp < {until:DateTime64(6, 'UTC')}
    AND price_status != 'not_billable'
    AND (
        trace_id IN {traces:Array(String)}
        OR (response_id != '' AND response_id IN {response_ids:Array(String)})
        OR (
            input_tokens IN {inputs:Array(UInt64)}
            AND service_instance IN {instances:Array(String)}
            AND timestamp <= {bucket_to:DateTime64(6, 'UTC')}
            AND addMicroseconds(timestamp, toInt64(duration_ms * 1000)) >= {bucket_from:DateTime64(6, 'UTC')}
        )
    )
