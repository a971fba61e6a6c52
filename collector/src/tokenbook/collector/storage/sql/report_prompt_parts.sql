-- `tokenbook report --by prompt-part`: the input tokens of the billed model calls in [since, until) whose
-- prompt was measured, split over the parts of the prompt (v_prompt_parts: a call's parts sum exactly to
-- its input tokens), with each part's share of them and its average per measured call.
SELECT
    part,
    part_tokens AS tokens,
    round(100 * part_tokens / nullIf(sum(part_tokens) OVER (), 0), 1) AS share_pct,
    round(part_tokens / measured_calls, 1) AS per_call
FROM
(
    SELECT part, sum(tokens) AS part_tokens, count() AS measured_calls
    FROM v_prompt_parts
    WHERE timestamp >= {since:DateTime64(6, 'UTC')}
        AND timestamp < {until:DateTime64(6, 'UTC')}
        AND ({tenant:String} = '' OR tenant_id = {tenant:String})
    GROUP BY part
)
ORDER BY indexOf(['system', 'history', 'retrieved', 'tool_result', 'user', 'tool_definition', 'overhead'], part)
