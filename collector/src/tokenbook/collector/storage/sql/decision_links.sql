-- The decision pass: parent links of the other recorded spans (wrappers, tools) of the given traces,
-- so that a chain wrapper -> step -> model call is followed.
SELECT tenant_id, trace_id, span_id, parent_span_id
FROM {{db}}.context_steps FINAL
WHERE trace_id IN {traces:Array(String)}
    AND timestamp >= {since:DateTime64(6, 'UTC')}
    AND timestamp < {until:DateTime64(6, 'UTC')}
