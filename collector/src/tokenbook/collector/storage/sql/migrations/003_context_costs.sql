-- Per (tenant, context) totals, recomputed from the deduplicated ledger (llm_calls FINAL and
-- context_steps FINAL) for every context a write touched: a recomputation replaces the row
-- (ReplacingMergeTree(refreshed_at)), it never adds, so re-delivered spans cannot change a total.
-- Money sums are Decimal(38, 12) (a sum of Decimal(18, 12) values can exceed 18 digits); NULL when
-- no call of the context was priced.
CREATE TABLE IF NOT EXISTS {{table:context_costs}} {{on_cluster}}
(
    tenant_id LowCardinality(String),
    context_id String,
    first_seen DateTime64(6, 'UTC'),
    last_seen DateTime64(6, 'UTC'),
    workflow_name LowCardinality(String),
    workflow_id String,
    user_id String,
    project_id LowCardinality(String),
    feature LowCardinality(String),
    calls UInt64,
    unpriced_calls UInt64,
    call_errors UInt64,
    retries UInt64,
    tool_calls UInt64,
    tool_errors UInt64,
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
    currency LowCardinality(String),
    models Array(LowCardinality(String)),
    outcome LowCardinality(String),
    budget_state LowCardinality(String) DEFAULT '',
    refreshed_at DateTime64(6, 'UTC')
)
ENGINE = {{engine:ReplacingMergeTree(refreshed_at)}}
ORDER BY (tenant_id, context_id)
;
{{distributed:context_costs:cityHash64(tenant_id, context_id)}}
