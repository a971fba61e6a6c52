-- The last alerted state of every counter whose window is still open (or that has no window) and
-- the breakers' last events: restored at start so that a restart repeats no alert. Crossings of one
-- batch share an event_time: ties go to the later state (at_risk < over_budget, tripped < reset).
SELECT
    kind,
    rule,
    subject_values,
    window_start,
    argMax(state, (event_time, indexOf(['within_budget', 'at_risk', 'over_budget', 'tripped', 'reset'], state)))
        AS state,
    max(window_end) AS window_end,
    max(event_time) AS last_event
FROM {{db}}.budget_events FINAL
WHERE event_time >= {since:DateTime64(6, 'UTC')}
GROUP BY kind, rule, subject_values, window_start
