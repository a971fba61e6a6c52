-- Tool-call latency per context and tool, counted as `context_costs` counts tool calls (migration 170,
-- whose sibling-layer rule compared each call with the one before it only): the tool is the last word
-- of the step's name (`execute_tool get_weather`, `weather.get_weather` and `get_weather` are one
-- tool); a tool step whose parent is a tool step of the same tool (a second instrumentation layer of
-- one tool call: AutoGen's span under OpenInference's) is no tool call of its own, nor is one that lies
-- within an earlier tool step of the same parent and tool under another name (the MCP SDK's
-- `tools/call get_weather` within OpenInference's `mcp__weather__get_weather`), whichever call started
-- between them (parallel calls, each recorded twice): their time is within the call's. A tool that
-- runs another tool, and parallel calls of one tool under one name, count each. Each context's tool
-- steps are held twice, sorted (`by_key`): as a possible parent, (span ID, tool, 0, ...), and as a
-- call, (parent's span ID, tool, 1, start, minus its end, failed, name, duration); split where the key
-- changes, a run that starts with a possible parent holds that step's layers, one that starts with a
-- call holds calls of their own (`own`), in start order, the longest first. `keys` orders the calls
-- by end, then the earlier start; `contained_by` holds, for each call, the largest key of the calls
-- before it in its (parent, tool) run, by name (`maxMap` over those ranges); a call whose run holds a
-- larger key under another name lies within that call (`sibling_layer`). Sorted, not looked up per
-- step: a lookup costs the square of a context's tool steps. Grouped by context first, so that a
-- query for a tenant or a context reads only theirs.
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
            (e, p, i) -> if(i = 1 OR (e.1, e.2) != (p.1, p.2), i, 0),
            own, arrayPopBack(arrayPushFront(own, own[1])), arrayEnumerate(own)
        ) AS run_starts,
        arrayMap(
            e -> toInt128(-e.5) * 4503599627370496 + (4503599627370495 - toUnixTimestamp64Micro(e.4)), own
        ) AS keys,
        arrayReduceInRanges(
            'maxMap',
            arrayMap((g, i) -> (g, toUInt32(i - g)), arrayFill(g -> g != 0, run_starts), arrayEnumerate(own)),
            arrayMap(e -> [e.7], own),
            arrayMap(k -> [k], keys)
        ) AS contained_by,
        arrayMap(
            (e, k, c) -> arrayExists((name, key) -> name != e.7 AND key > k, c.1, c.2), own, keys, contained_by
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
