-- Drift alerts already raised (restored at start, so a restart repeats none).
SELECT DISTINCT event_id
FROM {{db}}.budget_events
WHERE kind = 'reconcile' AND window_start >= {since:DateTime64(6, 'UTC')}
