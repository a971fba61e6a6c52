-- Non-billed spans that matter per context: tool calls, agent/chain wrappers, outcomes.
-- Columns in `collector/ledger.py` StepRow order; deduplicated like llm_calls.
CREATE TABLE IF NOT EXISTS {{table:context_steps}} {{on_cluster}}
(
    timestamp DateTime64(6, 'UTC') CODEC(Delta, ZSTD),
    trace_id String,
    span_id String,
    parent_span_id String,
    context_id String,
    tenant_id LowCardinality(String),
    kind LowCardinality(String),
    name LowCardinality(String),
    operation LowCardinality(String),
    status LowCardinality(String),
    duration_ms Float64,
    outcome LowCardinality(String),
    ingested_at DateTime64(6, 'UTC'),
    version UInt64
)
ENGINE = {{engine:ReplacingMergeTree(version)}}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (tenant_id, context_id, trace_id, span_id)
;
{{distributed:context_steps:cityHash64(tenant_id, context_id)}}
