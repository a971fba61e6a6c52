-- The last alerted state of every counter whose window is still open (or that has no window) and
-- the breakers' last events: restored at start so that a restart repeats no alert.
SELECT
    kind,
    rule,
    subject_values,
    window_start,
    argMax(state, event_time) AS state,
    argMax(window_end, event_time) AS window_end,
    max(event_time) AS last_event
FROM {{db}}.budget_events FINAL
WHERE event_time >= {since:DateTime64(6, 'UTC')}
GROUP BY kind, rule, subject_values, window_start
