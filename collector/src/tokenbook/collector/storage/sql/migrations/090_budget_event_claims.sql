-- Alert claims: collectors sharing one ClickHouse each evaluate the fleet's counters, so several may
-- see the same crossing (one event_id, `collector/budgets/events.py`). Before it records and delivers
-- an event, a collector inserts one claim row (event_id, its collector ID, the server's time) and reads
-- the claims back after a settle delay: the earliest claim (ties: the smaller collector ID) delivers
-- the alert, the others drop it. Append-only; rows older than the longest window can be dropped.
CREATE TABLE IF NOT EXISTS {{table:budget_event_claims}} {{on_cluster}}
(
    event_id String,
    collector_id String,
    claimed_at DateTime64(6, 'UTC')
)
ENGINE = {{engine:MergeTree()}}
PARTITION BY toYYYYMM(claimed_at)
ORDER BY (event_id, claimed_at, collector_id)
;
{{distributed:budget_event_claims:cityHash64(event_id)}}
