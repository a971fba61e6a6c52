-- `tokenbook budgets` without a running collector: the last recorded state of each quota, budget
-- and breaker subject whose window is still open, from the crossings in budget_events (usage as of
-- the crossing).
SELECT
    argMax(kind, _order) AS kind,
    rule,
    argMax(subject, _order) AS subject,
    argMax(window, _order) AS window,
    argMax(state, _order) AS state,
    argMax(enforcement, _order) AS enforcement,
    argMax(used_tokens, _order) AS used_tokens,
    argMax(limit_tokens, _order) AS limit_tokens,
    argMax(used_cost, _order) AS used_cost,
    argMax(limit_cost, _order) AS limit_cost,
    argMax(currency, _order) AS currency,
    argMax(window_end, _order) AS reset_at,
    max(event_time) AS last_event
FROM
(
    SELECT
        *,
        (event_time, indexOf(['within_budget', 'at_risk', 'over_budget', 'tripped', 'reset'], state)) AS _order,
        arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), subject_keys, subject_values), ', ') AS subject
    FROM {{db}}.v_budget_events
    WHERE ({tenant:String} = '' OR tenant_id = {tenant:String})
      AND (window_end IS NULL OR window_end > now64(6))
)
GROUP BY rule, subject_values
ORDER BY rule, subject
