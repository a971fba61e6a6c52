-- The ledger: one row per billed model call. Columns in `collector/ledger.py` CallRow order.
-- ReplacingMergeTree(version): a re-delivered span (same tenant, context, trace and span ID) counts
-- once when read with FINAL; re-pricing inserts the same span with a higher version.
CREATE TABLE IF NOT EXISTS {{table:llm_calls}} {{on_cluster}}
(
    timestamp DateTime64(6, 'UTC') CODEC(Delta, ZSTD),
    trace_id String,
    span_id String,
    parent_span_id String,
    context_id String,
    workflow_name LowCardinality(String),
    workflow_id String,
    tenant_id LowCardinality(String),
    user_id String,
    project_id LowCardinality(String),
    team_id LowCardinality(String),
    feature LowCardinality(String),
    service_name LowCardinality(String),
    tags Map(LowCardinality(String), String),
    provider LowCardinality(String),
    model LowCardinality(String),
    operation LowCardinality(String),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    input_cost Nullable(Decimal(18, 12)),
    output_cost Nullable(Decimal(18, 12)),
    cache_read_cost Nullable(Decimal(18, 12)),
    cache_write_cost Nullable(Decimal(18, 12)),
    total_cost Nullable(Decimal(18, 12)),
    currency LowCardinality(String),
    price_status LowCardinality(String),
    price_source LowCardinality(String),
    client_cost Nullable(Decimal(18, 12)),
    usage_issue LowCardinality(String),
    attempt UInt32,
    status LowCardinality(String),
    error_type LowCardinality(String),
    duration_ms Float64,
    ingested_at DateTime64(6, 'UTC'),
    version UInt64
)
ENGINE = {{engine:ReplacingMergeTree(version)}}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (tenant_id, context_id, trace_id, span_id)
;
{{distributed:llm_calls:cityHash64(tenant_id, context_id)}}
