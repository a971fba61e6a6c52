-- Fleet reconciliation of the breaker (collector/budgets/fleet.py): each tenant's billed tokens per
-- breaker bucket (`bucket_us` microseconds of ingest time) since `since`. Each span counts once, at
-- the first of its copies ingested since `since` and as its newest version bills it, leaving out the
-- `own` spans this collector counts from memory. Every value is bound.
SELECT
    tenant_id,
    intDiv(toUnixTimestamp64Micro(first_ingested), {bucket_us:UInt64}) AS bucket,
    sum(tokens) AS tokens
FROM
(
    SELECT
        tenant_id,
        trace_id,
        span_id,
        min(ingested_at) AS first_ingested,
        argMax(input_tokens + output_tokens, version) AS tokens,
        argMax(price_status, version) AS status
    FROM {{db}}.llm_calls
    WHERE ingested_at >= {since:DateTime64(6, 'UTC')}
    GROUP BY tenant_id, trace_id, span_id
)
WHERE status NOT IN ('duplicate_layer', 'wrapper')
    AND (trace_id, span_id) NOT IN (
        SELECT tupleElement(k, 1), tupleElement(k, 2)
        FROM (SELECT arrayJoin({own:Array(Tuple(String, String))}) AS k)
    )
GROUP BY tenant_id, bucket
