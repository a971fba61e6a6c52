-- The decision pass (storage/decisions.py): the stored rows, every column, of the candidates whose
-- decision changed (the caller keeps the exact (tenant, trace, span) keys), to be written again with
-- it. PREWHERE on trace_id, a column of the sorting key: every version of a span is kept for FINAL.
SELECT *
FROM {{db}}.llm_calls FINAL
PREWHERE trace_id IN {traces:Array(String)}
WHERE span_id IN {spans:Array(String)}
    AND timestamp >= {since:DateTime64(6, 'UTC')}
    AND timestamp < {until:DateTime64(6, 'UTC')}
