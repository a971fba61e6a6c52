-- (tenant_id, trace_id, span_id) of every call and step ingested since a time: warms the collector's
-- dedup cache.
SELECT tenant_id, trace_id, span_id FROM {{db}}.llm_calls WHERE ingested_at >= {since:DateTime64(6, 'UTC')}
UNION DISTINCT
SELECT tenant_id, trace_id, span_id FROM {{db}}.context_steps WHERE ingested_at >= {since:DateTime64(6, 'UTC')}
