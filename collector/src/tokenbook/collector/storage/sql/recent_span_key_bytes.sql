-- The dedup keys (raw trace ID + raw span ID + tenant, as ingest/dedup.py span_key builds them) of the
-- newest calls and steps ingested since a time, at most {limit} of them (the dedup memory's size),
-- oldest first. Read as RowBinary: one length-prefixed string per key, no Python tuples. The cutoff
-- is found on ingested_at alone (8 bytes a row), so only the returned keys are sorted.
WITH
    (
        SELECT min(ingested_at) FROM
        (
            SELECT ingested_at FROM
            (
                SELECT ingested_at FROM {{db}}.llm_calls WHERE ingested_at >= {since:DateTime64(6, 'UTC')}
                UNION ALL
                SELECT ingested_at FROM {{db}}.context_steps WHERE ingested_at >= {since:DateTime64(6, 'UTC')}
            )
            ORDER BY ingested_at DESC
            LIMIT {limit:UInt64}
        )
    ) AS cutoff
SELECT key FROM
(
    SELECT concat(unhex(trace_id), unhex(span_id), toString(tenant_id)) AS key, ingested_at
    FROM {{db}}.llm_calls
    WHERE ingested_at >= {since:DateTime64(6, 'UTC')} AND ingested_at >= cutoff
    UNION ALL
    SELECT concat(unhex(trace_id), unhex(span_id), toString(tenant_id)) AS key, ingested_at
    FROM {{db}}.context_steps
    WHERE ingested_at >= {since:DateTime64(6, 'UTC')} AND ingested_at >= cutoff
)
ORDER BY ingested_at
LIMIT {limit:UInt64}
