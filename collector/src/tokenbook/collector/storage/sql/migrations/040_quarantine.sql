-- Quarantine: ledger rows that storage refused deterministically (e.g. a value that does not fit its
-- column), isolated by the collector's writer so the rows around them are inserted. One row per
-- refused ledger row: its table, identity, the refusal (ClickHouse error code and message) and the row
-- itself in the insert format (JSONCompactColumns, one row), so it can be replayed unchanged
-- (`tokenbook quarantine replay`). A replay writes a newer version of the entry (state `replayed`, or
-- `quarantined` again with the new reason): read it with FINAL.
CREATE TABLE IF NOT EXISTS {{table:quarantine}} {{on_cluster}}
(
    quarantined_at DateTime64(6, 'UTC'),
    table_name LowCardinality(String),
    tenant_id LowCardinality(String),
    trace_id String,
    span_id String,
    span_time String,
    error_code Int32,
    reason String,
    row String,
    state LowCardinality(String),
    version UInt64
)
ENGINE = {{engine:ReplacingMergeTree(version)}}
ORDER BY (table_name, tenant_id, trace_id, span_id)
;
{{distributed:quarantine:cityHash64(tenant_id)}}
