-- Hourly roll-up for dashboards, recomputed from llm_calls FINAL for every (tenant, hour) a write
-- touched; a recomputation replaces the group's row (ReplacingMergeTree(refreshed_at)).
CREATE TABLE IF NOT EXISTS {{table:cost_hourly}} {{on_cluster}}
(
    hour DateTime('UTC'),
    tenant_id LowCardinality(String),
    project_id LowCardinality(String),
    team_id LowCardinality(String),
    feature LowCardinality(String),
    service_name LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    operation LowCardinality(String),
    currency LowCardinality(String),
    calls UInt64,
    unpriced_calls UInt64,
    errors UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    input_cost Nullable(Decimal(38, 12)),
    output_cost Nullable(Decimal(38, 12)),
    cache_read_cost Nullable(Decimal(38, 12)),
    cache_write_cost Nullable(Decimal(38, 12)),
    total_cost Nullable(Decimal(38, 12)),
    refreshed_at DateTime64(6, 'UTC')
)
ENGINE = {{engine:ReplacingMergeTree(refreshed_at)}}
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, hour, project_id, team_id, feature, service_name, provider, model, operation, currency)
;
{{distributed:cost_hourly:cityHash64(tenant_id, hour)}}
