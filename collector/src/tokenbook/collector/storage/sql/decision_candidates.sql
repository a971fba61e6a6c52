-- The decision pass (storage/decisions.py): the decision facts of every candidate row (a span with
-- usage, or one that was recorded before migration 030) related to the touched traces, response IDs
-- and match buckets, as the deduplicated ledger holds them; a bucket's calls only where they meet the
-- buckets' time span. The caller keeps the rows that match a key exactly.
--
-- Read by time from the ledger's time-ordered projection (migration 130), not with FINAL (which reads
-- every column of whole month partitions): the traces with a version that matches a key, then every
-- version of their spans in the window, of which the newest of each span is the row FINAL keeps (every
-- version of a span has the same timestamp and trace). The caller applies the keys again, exactly, to
-- that row (`Related.matches`, stricter than the keys here), so the query does not repeat them: each
-- condition repeated costs the engine's analysis on every pass.
SELECT
    timestamp, tenant_id, context_id, trace_id, span_id, parent_span_id, ancestors, kind, scope_name,
    scope_version, service_instance, model, response_id, input_tokens, output_tokens, duration_ms,
    price_status, quote_status, billing_rule, billed_by, version
FROM
(
    SELECT
        timestamp, tenant_id, context_id, trace_id, span_id, parent_span_id, ancestors, kind,
        scope_name, scope_version, service_instance, model, response_id, input_tokens, output_tokens,
        duration_ms, price_status, quote_status, billing_rule, billed_by, version
    FROM {{db}}.llm_calls
    WHERE timestamp >= {since:DateTime64(6, 'UTC')}
        AND timestamp < {until:DateTime64(6, 'UTC')}
        AND trace_id IN (
            SELECT trace_id
            FROM {{db}}.llm_calls
            WHERE timestamp >= {since:DateTime64(6, 'UTC')}
                AND timestamp < {until:DateTime64(6, 'UTC')}
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
        )
    ORDER BY version DESC, ingested_at DESC
    LIMIT 1 BY tenant_id, context_id, trace_id, span_id
)
WHERE price_status != 'not_billable'
