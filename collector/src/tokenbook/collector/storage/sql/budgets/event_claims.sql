-- Who delivers one of `event_ids` (an event; for a breaker trip, the trips overlapping it): the
-- earliest live claim, i.e. made less than `takeover_ms` ago by the server's clock (ties go to the
-- smaller collector ID; `claims` = 0 when none is live), and whether budget_events already records
-- one of them (another collector delivered it). Claims: migration 090.
SELECT
    countIf(live) AS claims,
    argMinIf(collector_id, (claimed_at, collector_id), live) AS winner,
    (SELECT count() FROM {{db}}.budget_events WHERE event_id IN {event_ids:Array(String)}) AS recorded
FROM
(
    SELECT
        collector_id,
        claimed_at,
        claimed_at >= now64(6, 'UTC') - toIntervalMillisecond({takeover_ms:UInt64}) AS live
    FROM {{db}}.budget_event_claims
    WHERE event_id IN {event_ids:Array(String)}
)
