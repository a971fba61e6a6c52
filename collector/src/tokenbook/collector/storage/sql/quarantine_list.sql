-- `tokenbook quarantine list`: rows storage refused, oldest first (with {all:Bool}, also replayed ones).
SELECT quarantined_at, state, table_name, tenant_id, trace_id, span_id, span_time, error_code, reason
FROM {{db}}.quarantine FINAL
WHERE {all:Bool} OR state = 'quarantined'
ORDER BY quarantined_at
