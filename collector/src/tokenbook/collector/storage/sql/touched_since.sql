-- (tenant_id, context_id, hour) of every call and step ingested in [since, until): the aggregate keys
-- to recompute after a restart (a crash between a write and its refresh), one slice at a time. hour
-- is NULL for steps, which do not feed the hourly roll-up.
SELECT DISTINCT tenant_id, context_id, toNullable(toStartOfHour(timestamp)) AS hour
FROM {{db}}.llm_calls
WHERE ingested_at >= {since:DateTime64(6, 'UTC')} AND ingested_at < {until:DateTime64(6, 'UTC')}
UNION DISTINCT
SELECT DISTINCT tenant_id, context_id, CAST(NULL, 'Nullable(DateTime(\'UTC\'))') AS hour
FROM {{db}}.context_steps
WHERE ingested_at >= {since:DateTime64(6, 'UTC')} AND ingested_at < {until:DateTime64(6, 'UTC')}
