-- The decision pass (storage/decisions.py): the stored rows, every column, of the candidates whose
-- decision changed, to be written again with it. By their full sorting key (tenant, context, trace,
-- span): a primary-key lookup, whatever the partitions hold, and every version of each span is there
-- for FINAL.
SELECT *
FROM {{db}}.llm_calls FINAL
PREWHERE (tenant_id, context_id, trace_id, span_id) IN {keys:Array(Tuple(String, String, String, String))}
WHERE timestamp >= {since:DateTime64(6, 'UTC')}
    AND timestamp < {until:DateTime64(6, 'UTC')}
