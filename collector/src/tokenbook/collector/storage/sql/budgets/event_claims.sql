-- Who delivers `event_id`: the earliest claim, ties to the smaller collector ID (`claims` = 0 when
-- nobody claimed it), and whether budget_events already records it (another collector delivered it).
SELECT
    count() AS claims,
    argMin(collector_id, (claimed_at, collector_id)) AS winner,
    (SELECT count() FROM {{db}}.budget_events WHERE event_id = {event_id:String}) AS recorded
FROM {{db}}.budget_event_claims
WHERE event_id = {event_id:String}
