-- The decision keys of every call row ingested in [since, until) but fetch rows (`DecisionKeys.add_call`
-- reads them): re-decided after a restart (a crash between a write and its decision pass), one slice
-- at a time.
SELECT trace_id, tenant_id, response_id, service_instance, input_tokens, timestamp, duration_ms, kind,
    price_status, quote_status, parent_span_id, status, model
FROM {{db}}.llm_calls
WHERE ingested_at >= {since:DateTime64(6, 'UTC')} AND ingested_at < {until:DateTime64(6, 'UTC')}
    AND kind != 'fetch'
