-- Tool-call latency per context and tool, counted as `context_costs` counts tool calls: the tool is
-- the last word of the step's name (`execute_tool get_weather`, `weather.get_weather` and
-- `get_weather` are one tool); a tool step whose parent is a tool step of the same tool (a second
-- instrumentation layer of one tool call: AutoGen's span under OpenInference's) is no tool call of its
-- own, nor is one that lies within the tool step before it of the same parent and tool, under another
-- name, and is shorter (the MCP SDK's `tools/call get_weather` beside OpenInference's
-- `mcp__weather__get_weather`): their time is within the call's. A tool that runs another tool, and
-- parallel calls of one tool, count each. Each context's tool steps are held twice, sorted (`by_key`):
-- as a possible parent, (span ID, tool, 0, ...), and as a call, (parent's span ID, tool, 1, start,
-- minus its end, failed, name, duration); split where the key changes, a run that starts with a
-- possible parent holds that step's layers, one that starts with a call holds calls of their own
-- (`own`), in start order, the longest first, each compared with the one before it (`sibling_layer`).
-- Sorted, not looked up per step: a lookup costs the square of a context's tool steps. Grouped by
-- context first, so that a query for a tenant or a context reads only theirs.
CREATE OR REPLACE VIEW {{db}}.v_tool_latency {{on_cluster}} AS
SELECT
    tenant_id,
    context_id,
    step.2 AS tool,
    count() AS tool_calls,
    countIf(step.6 = 1) AS tool_errors,
    sum(step.8) AS total_ms,
    avg(step.8) AS avg_ms,
    max(step.8) AS max_ms,
    min(step.4) AS first_seen,
    max(step.4) AS last_seen
FROM
(
    SELECT
        tenant_id,
        context_id,
        arrayFlatten(
            arrayFilter(
                run -> run[1].3 = 1,
                arraySplit(
                    (e, p) -> (e.1, e.2) != (p.1, p.2),
                    by_key,
                    arrayPopBack(arrayPushFront(by_key, by_key[1]))
                )
            )
        ) AS own,
        arrayMap(
            (e, p) -> (e.1, e.2) = (p.1, p.2) AND e.7 != p.7 AND p.5 <= e.5 AND (p.4 < e.4 OR p.5 < e.5),
            own,
            arrayPopBack(arrayPushFront(own, own[1]))
        ) AS sibling_layer
    FROM
    (
        SELECT
            tenant_id,
            context_id,
            arraySort(
                arrayConcat(
                    groupArray(
                        (
                            span_id, splitByRegexp('[ ./]|__', name)[-1], 0, timestamp, toInt64(0),
                            toUInt8(0), '', toFloat64(0)
                        )
                    ),
                    groupArray(
                        (
                            parent_span_id, splitByRegexp('[ ./]|__', name)[-1], 1, timestamp,
                            -(toUnixTimestamp64Micro(timestamp) + toInt64(duration_ms * 1000)),
                            toUInt8(status = 'error'), name, duration_ms
                        )
                    )
                )
            ) AS by_key
        FROM {{db}}.v_context_steps
        WHERE kind = 'tool'
        GROUP BY tenant_id, context_id
    )
)
ARRAY JOIN arrayFilter((e, layer) -> NOT layer, own, sibling_layer) AS step
GROUP BY tenant_id, context_id, tool
