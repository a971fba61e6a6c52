-- `tokenbook report --by prompt-part`: how many billed model calls in [since, until) had their prompt
-- measured, and how many of those were estimated by share of the text rather than counted.
SELECT
    countIf(prompt_system_tokens IS NOT NULL) AS measured,
    countIf(prompt_estimated) AS estimated,
    count() AS calls
FROM v_calls
WHERE kind IN ('model', '')
    AND price_status != 'not_billable'
    AND timestamp >= {since:DateTime64(6, 'UTC')}
    AND timestamp < {until:DateTime64(6, 'UTC')}
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
