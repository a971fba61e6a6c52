-- Budget events: one row per quota/budget state crossing and per circuit-breaker trip or reset,
-- written by the collector's budget evaluator (collector/budgets/). event_id is derived from what
-- crossed (rule, subject, window start, state): a crossing re-sent after a restart replaces its row.
-- At start the collector restores the last alerted state of every current window from here, so a
-- restart repeats no alert. Costs are Decimal, NULL limits mean "no limit of that kind".
CREATE TABLE IF NOT EXISTS {{table:budget_events}} {{on_cluster}}
(
    event_time DateTime64(6, 'UTC'),
    event_id String,
    kind LowCardinality(String),
    rule LowCardinality(String),
    state LowCardinality(String),
    previous_state LowCardinality(String),
    enforcement LowCardinality(String),
    tenant_id LowCardinality(String),
    context_id String,
    subject_keys Array(LowCardinality(String)),
    subject_values Array(String),
    window LowCardinality(String),
    window_start DateTime64(6, 'UTC'),
    window_end Nullable(DateTime64(6, 'UTC')),
    used_tokens UInt64,
    limit_tokens Nullable(UInt64),
    used_cost Decimal(38, 12),
    limit_cost Nullable(Decimal(18, 12)),
    currency LowCardinality(String),
    message String
)
ENGINE = {{engine:ReplacingMergeTree(event_time)}}
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant_id, rule, event_id)
;
{{distributed:budget_events:cityHash64(tenant_id)}}
;
CREATE VIEW IF NOT EXISTS {{db}}.v_budget_events {{on_cluster}} AS
SELECT * FROM {{db}}.budget_events FINAL
