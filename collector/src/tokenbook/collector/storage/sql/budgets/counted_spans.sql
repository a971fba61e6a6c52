-- The oldest stored version of each given (tenant_id, trace_id, span_id): a call whose oldest version
-- is older than its own was ingested before (a re-delivery the dedup memory had forgotten) and is
-- already counted. The timestamps (a re-delivery has its original's) prune partitions and granules.
SELECT tenant_id, trace_id, span_id, min(version)
FROM {{db}}.llm_calls
WHERE timestamp IN {timestamps:Array(DateTime64(6, 'UTC'))}
  AND trace_id IN {trace_ids:Array(String)}
  AND has({keys:Array(Tuple(String, String, String))}, (tenant_id, trace_id, span_id))
GROUP BY tenant_id, trace_id, span_id
