-- The dedup keys (ingest/dedup.py record_key: the first 16 bytes of SHA-256 of raw trace ID, raw
-- span ID and tenant) of the calls and steps ingested in [since, until), unordered. Read as
-- RowBinary: 16 bytes a key, no length prefix, turned into a NumPy array without a Python object per
-- key.
SELECT CAST(substring(SHA256(concat(unhex(trace_id), unhex(span_id), toString(tenant_id))), 1, 16), 'FixedString(16)')
FROM {{db}}.llm_calls
WHERE ingested_at >= {since:DateTime64(6, 'UTC')} AND ingested_at < {until:DateTime64(6, 'UTC')}
UNION ALL
SELECT CAST(substring(SHA256(concat(unhex(trace_id), unhex(span_id), toString(tenant_id))), 1, 16), 'FixedString(16)')
FROM {{db}}.context_steps
WHERE ingested_at >= {since:DateTime64(6, 'UTC')} AND ingested_at < {until:DateTime64(6, 'UTC')}
