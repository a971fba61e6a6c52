-- The decision pass: parent links of the other recorded spans (wrappers, tools) of the given traces,
-- so that a chain wrapper -> step -> model call is followed. Read without FINAL from the steps'
-- trace-ordered projection (migration 150): every version of each step, by trace; the caller keeps
-- the newest (the highest version, then the latest ingestion: the row FINAL keeps).
SELECT tenant_id, trace_id, span_id, parent_span_id, version, ingested_at
FROM {{db}}.context_steps
WHERE trace_id IN {traces:Array(String)}
    AND timestamp >= {since:DateTime64(6, 'UTC')}
    AND timestamp < {until:DateTime64(6, 'UTC')}
