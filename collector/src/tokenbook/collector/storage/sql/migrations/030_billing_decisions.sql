-- Each model call billed once, whatever records it (docs/reference/billing-rule.md). Every span with
-- usage is a candidate row of llm_calls carrying the facts the decision needs; the collector's
-- decision pass (storage/decisions.py) recomputes which candidate bills each call from those facts
-- and writes changed rows with a higher version: price_status 'duplicate_layer' or 'wrapper' for the
-- rows that do not bill (their costs are kept for audit and left out of every total).
ALTER TABLE {{table:llm_calls}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS response_id String,
    ADD COLUMN IF NOT EXISTS scope_name LowCardinality(String),
    ADD COLUMN IF NOT EXISTS scope_version LowCardinality(String),
    ADD COLUMN IF NOT EXISTS service_instance LowCardinality(String),
    ADD COLUMN IF NOT EXISTS kind LowCardinality(String),
    ADD COLUMN IF NOT EXISTS profile LowCardinality(String),
    ADD COLUMN IF NOT EXISTS quote_status LowCardinality(String),
    ADD COLUMN IF NOT EXISTS billing_rule LowCardinality(String),
    ADD COLUMN IF NOT EXISTS billed_by String,
    ADD COLUMN IF NOT EXISTS ancestors String
;
ALTER TABLE {{db}}.llm_calls {{on_cluster}}
    ADD COLUMN IF NOT EXISTS response_id String,
    ADD COLUMN IF NOT EXISTS scope_name LowCardinality(String),
    ADD COLUMN IF NOT EXISTS scope_version LowCardinality(String),
    ADD COLUMN IF NOT EXISTS service_instance LowCardinality(String),
    ADD COLUMN IF NOT EXISTS kind LowCardinality(String),
    ADD COLUMN IF NOT EXISTS profile LowCardinality(String),
    ADD COLUMN IF NOT EXISTS quote_status LowCardinality(String),
    ADD COLUMN IF NOT EXISTS billing_rule LowCardinality(String),
    ADD COLUMN IF NOT EXISTS billed_by String,
    ADD COLUMN IF NOT EXISTS ancestors String
;
-- The decision pass looks candidates up by trace, response ID and match key: skip indexes keep
-- those lookups from reading every granule.
ALTER TABLE {{table:llm_calls}} {{on_cluster}}
    ADD INDEX IF NOT EXISTS idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 4,
    ADD INDEX IF NOT EXISTS idx_response_id response_id TYPE bloom_filter(0.01) GRANULARITY 4,
    ADD INDEX IF NOT EXISTS idx_match (service_instance, input_tokens) TYPE bloom_filter(0.01) GRANULARITY 4
;
ALTER TABLE {{table:context_steps}} {{on_cluster}}
    ADD INDEX IF NOT EXISTS idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 4
;
-- Every candidate, billed or not (the audit view; `tokenbook explain` reads it).
CREATE VIEW IF NOT EXISTS {{db}}.v_call_candidates {{on_cluster}} AS
SELECT * FROM {{db}}.llm_calls FINAL
;
-- The billed calls: what every total reads. Rows another span bills are left out.
CREATE OR REPLACE VIEW {{db}}.v_calls {{on_cluster}} AS
SELECT * FROM {{db}}.llm_calls FINAL
WHERE price_status NOT IN ('duplicate_layer', 'wrapper')
;
CREATE OR REPLACE VIEW {{db}}.v_cache_savings {{on_cluster}} AS
SELECT
    toDate(timestamp) AS day,
    tenant_id,
    provider,
    model,
    currency,
    sum(cache_read_tokens) AS cached_input_tokens,
    sum(cache_read_cost) AS paid_for_cached_input,
    sumIf(
        cache_read_tokens * (input_cost / (input_tokens - cache_read_tokens - cache_write_tokens))
            - cache_read_cost,
        price_status = 'priced' AND input_tokens > cache_read_tokens + cache_write_tokens
    ) AS saved_by_prompt_cache,
    countIf(price_status = 'cache_hit') AS response_cache_hits
FROM {{db}}.llm_calls FINAL
WHERE (cache_read_tokens > 0 OR price_status = 'cache_hit')
    AND price_status NOT IN ('duplicate_layer', 'wrapper')
GROUP BY day, tenant_id, provider, model, currency
