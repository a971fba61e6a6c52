-- Cuts what was ingested in [since, until) into slices of at most {rows} calls and steps: the
-- ingestion time {rows} places from one end (newest first when {newest} is 1, else oldest first),
-- or nothing when fewer rows are left. Reads the ingestion times alone (8 bytes a row) and keeps
-- {rows} of them: the restart's warm-up and recovery stay bounded whatever was ingested.
SELECT ingested_at FROM
(
    SELECT ingested_at FROM {{db}}.llm_calls
    WHERE ingested_at >= {since:DateTime64(6, 'UTC')} AND ingested_at < {until:DateTime64(6, 'UTC')}
    UNION ALL
    SELECT ingested_at FROM {{db}}.context_steps
    WHERE ingested_at >= {since:DateTime64(6, 'UTC')} AND ingested_at < {until:DateTime64(6, 'UTC')}
)
ORDER BY if({newest:UInt8} = 1, -toUnixTimestamp64Micro(ingested_at), toUnixTimestamp64Micro(ingested_at))
LIMIT 1 OFFSET {rows:UInt64}
