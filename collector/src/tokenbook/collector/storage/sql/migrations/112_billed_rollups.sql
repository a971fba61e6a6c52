-- The hourly roll-ups carry the billed cost too (the tenants' price books, migration 110), so reports
-- show list and billed cost from the same rows. Groups computed before this migration had no book:
-- their billed cost is their list cost.
ALTER TABLE {{table:cost_hourly}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS billed_cost Nullable(Decimal(38, 12))
;
ALTER TABLE {{db}}.cost_hourly {{on_cluster}}
    ADD COLUMN IF NOT EXISTS billed_cost Nullable(Decimal(38, 12))
;
ALTER TABLE {{table:tenant_hourly}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS billed_cost Nullable(Decimal(38, 12))
;
ALTER TABLE {{db}}.tenant_hourly {{on_cluster}}
    ADD COLUMN IF NOT EXISTS billed_cost Nullable(Decimal(38, 12))
;
ALTER TABLE {{table:model_hourly}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS billed_cost Nullable(Decimal(38, 12))
;
ALTER TABLE {{db}}.model_hourly {{on_cluster}}
    ADD COLUMN IF NOT EXISTS billed_cost Nullable(Decimal(38, 12))
;
ALTER TABLE {{table:cost_hourly}} {{on_cluster}}
    UPDATE billed_cost = total_cost WHERE billed_cost IS NULL AND total_cost IS NOT NULL
    SETTINGS mutations_sync = 1
;
ALTER TABLE {{table:tenant_hourly}} {{on_cluster}}
    UPDATE billed_cost = total_cost WHERE billed_cost IS NULL AND total_cost IS NOT NULL
    SETTINGS mutations_sync = 1
;
ALTER TABLE {{table:model_hourly}} {{on_cluster}}
    UPDATE billed_cost = total_cost WHERE billed_cost IS NULL AND total_cost IS NOT NULL
    SETTINGS mutations_sync = 1
;
-- The roll-up views list the tables' columns as of their creation: made again with the new one.
CREATE OR REPLACE VIEW {{db}}.v_tenant_hourly {{on_cluster}} AS
SELECT * FROM {{db}}.tenant_hourly FINAL
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_model_hourly {{on_cluster}} AS
SELECT * FROM {{db}}.model_hourly FINAL
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_cost_hourly {{on_cluster}} AS
SELECT * FROM {{db}}.cost_hourly FINAL
SETTINGS do_not_merge_across_partitions_select_final = 1
;
-- The daily views, with the billed cost beside the list cost (total_cost).
CREATE OR REPLACE VIEW {{db}}.v_cost_daily {{on_cluster}} AS
SELECT
    toDate(hour) AS day,
    tenant_id, project_id, team_id, feature, service_name, provider, model, operation, currency,
    sum(calls) AS calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(errors) AS errors,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(input_cost) AS input_cost,
    sum(output_cost) AS output_cost,
    sum(cache_read_cost) AS cache_read_cost,
    sum(cache_write_cost) AS cache_write_cost,
    sum(total_cost) AS total_cost,
    sum(billed_cost) AS billed_cost
FROM {{db}}.cost_hourly FINAL
GROUP BY day, tenant_id, project_id, team_id, feature, service_name, provider, model, operation, currency
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_tenant_daily {{on_cluster}} AS
SELECT
    toDate(hour) AS day,
    tenant_id,
    currency,
    sum(calls) AS calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(total_cost) AS total_cost,
    sum(billed_cost) AS billed_cost
FROM {{db}}.tenant_hourly FINAL
GROUP BY day, tenant_id, currency
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_model_daily {{on_cluster}} AS
SELECT
    toDate(hour) AS day,
    provider,
    model,
    currency,
    sum(calls) AS calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(total_cost) AS total_cost,
    sum(billed_cost) AS billed_cost
FROM {{db}}.model_hourly FINAL
GROUP BY day, provider, model, currency
SETTINGS do_not_merge_across_partitions_select_final = 1
;
