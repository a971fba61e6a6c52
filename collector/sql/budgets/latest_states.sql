-- `tokenbook budgets` without a running collector: the last recorded state of each quota, budget
-- and breaker subject whose window is still open, from the crossings in budget_events (usage as of
-- the crossing).
SELECT
    argMax(kind, event_time) AS kind,
    rule,
    argMax(subject, event_time) AS subject,
    argMax(window, event_time) AS window,
    argMax(state, event_time) AS state,
    argMax(enforcement, event_time) AS enforcement,
    argMax(used_tokens, event_time) AS used_tokens,
    argMax(limit_tokens, event_time) AS limit_tokens,
    argMax(used_cost, event_time) AS used_cost,
    argMax(limit_cost, event_time) AS limit_cost,
    argMax(currency, event_time) AS currency,
    argMax(window_end, event_time) AS reset_at,
    max(event_time) AS last_event
FROM
(
    SELECT *, arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), subject_keys, subject_values), ', ') AS subject
    FROM {{db}}.v_budget_events
    WHERE ({tenant:String} = '' OR tenant_id = {tenant:String})
      AND (window_end IS NULL OR window_end > now64(6))
)
GROUP BY rule, subject_values
ORDER BY rule, subject
